"""``python -m model_server.stream``: answer inference requests from one Kafka topic on another.

Every setting is a flag and a ``MODEL_SERVER_*`` environment variable (``stream/settings.py``). SIGTERM
(or Ctrl-C) stops fetching, answers and commits what is in flight, and exits 0. ``--workers N``:
the model loads once and N forked consumers share the partitions (``stream/workers.py``).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from ..kserve.workers import prepare_multiprocess_metrics

    # Before anything imports prometheus_client: with --workers, every worker's metrics go to files.
    prepare_multiprocess_metrics(sys.argv[1:])

import asyncio
import gc
import logging
import os
import signal
from dataclasses import dataclass

from ..core.dataplane import DataPlane
from ..core.errors import ModelServerError, status_of
from ..core.event_loop import use_event_loop
from ..core.repository import ModelRepository
from ..payload_log import payload_logger
from .consumer import StreamConsumer
from .ops import OpsApp, ops_server
from .settings import StreamSettings
from .workers import PartitionBoard, serve_with_workers

logger = logging.getLogger("model_server.stream")

DESCRIPTION = (
    "Predict from a Kafka topic: each message a V2 inference request, a V1 body or a CloudEvent; each "
    "response to --output_topic with the request's key and id, bad messages to --error_topic; offsets "
    "committed only after the answer is acknowledged (at least once)."
)


@dataclass
class Worker:
    """What a forked worker shares with the others: its number, the ops socket the parent bound,
    the partition board, the supervisor's health byte."""

    number: int
    ops_socket: object
    board: PartitionBoard
    health: object


def main(argv: list[str] | None = None) -> None:
    settings = StreamSettings.from_args(argv, prog="python -m model_server.stream", description=DESCRIPTION)
    # With workers, each line says whose it is.
    process = " [%(process)d]" if settings.workers > 1 else ""
    logging.basicConfig(level=settings.log_level, format=f"%(asctime)s %(levelname)s{process} %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    try:
        registry = load_model(settings)
    except ModelServerError as exc:
        logger.error("cannot serve %s: %s", settings.model_dir, exc)
        sys.exit(status_of(exc).exit_code)
    gc.freeze()  # what loaded lives as long as the process: full collections need not walk it
    if settings.workers > 1:

        def serve_one(number, ops_socket, board, health) -> int:
            return _run(settings, registry, Worker(number, ops_socket, board, health))

        sys.exit(serve_with_workers(settings, serve_one))
    sys.exit(_run(settings, registry))


def _run(settings: StreamSettings, registry: ModelRepository, worker: Worker | None = None) -> int:
    """One consumer process (the only one, or a forked worker) from its event loop to its exit code."""
    use_event_loop()
    try:
        return asyncio.run(serve(settings, DataPlane(registry, payload_log=payload_logger(settings)), worker))
    except ModelServerError as exc:
        logger.error("%s", exc)
        return status_of(exc).exit_code


def load_model(settings: StreamSettings) -> ModelRepository:
    """The one model this consumer answers for: a model directory, or a versions directory (its
    --version_policy; requests go to the default, newest, version)."""
    return ModelRepository.of_one_model(settings)


async def serve(settings: StreamSettings, dataplane: DataPlane, worker: Worker | None = None) -> int:
    if worker is None:
        consumer = StreamConsumer(settings, dataplane)
        ops = ops_server(OpsApp(consumer.live, consumer.ready), settings.http_port)
        sockets = None
    else:
        consumer = StreamConsumer(settings, dataplane, board=worker.board, number=worker.number)

        def ready() -> tuple[bool, str]:
            if not worker.health.ok():
                return False, "a worker keeps dying"
            return consumer.ready()

        ops = ops_server(OpsApp(consumer.live, ready, multiprocess=True), settings.http_port)
        sockets = [worker.ops_socket]
        logger.info("worker %d (pid %d) consuming", worker.number, os.getpid())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stop, consumer, signum)
    ops_task = asyncio.create_task(ops.serve(sockets=sockets))
    try:
        code = await consumer.run()
    finally:
        ops.should_exit = True
        await ops_task
        await dataplane.close()
    logger.info("stopped (exit %d)", code)
    return code


def _stop(consumer: StreamConsumer, signum: int) -> None:
    logger.info("%s: no more fetching; answering and committing what is in flight", signal.Signals(signum).name)
    consumer.stop()


if __name__ == "__main__":
    main()
