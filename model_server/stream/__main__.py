"""``python -m model_server.stream``: answer inference requests from one Kafka topic on another.

Every setting is a flag and a ``MODEL_SERVER_*`` environment variable (``stream/settings.py``). SIGTERM
(or Ctrl-C) stops fetching, answers and commits what is in flight, and exits 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from ..core.dataplane import DataPlane
from ..core.errors import ModelServerError, status_of
from ..core.event_loop import use_event_loop
from ..core.repository import ModelRepository
from ..payload_log import payload_logger
from .consumer import StreamConsumer
from .ops import OpsApp, ops_server
from .settings import StreamSettings

logger = logging.getLogger("model_server.stream")

DESCRIPTION = (
    "Predict from a Kafka topic: each message a V2 inference request, a V1 body or a CloudEvent; each "
    "response to --output_topic with the request's key and id, bad messages to --error_topic; offsets "
    "committed only after the answer is acknowledged (at least once)."
)


def main(argv: list[str] | None = None) -> None:
    settings = StreamSettings.from_args(argv, prog="python -m model_server.stream", description=DESCRIPTION)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(settings.log_level)))
    try:
        registry = load_model(settings)
    except ModelServerError as exc:
        logger.error("cannot serve %s: %s", settings.model_dir, exc)
        sys.exit(status_of(exc).exit_code)
    gc.freeze()  # what loaded lives as long as the process: full collections need not walk it
    use_event_loop()
    try:
        code = asyncio.run(serve(settings, DataPlane(registry, payload_log=payload_logger(settings))))
    except ModelServerError as exc:
        logger.error("%s", exc)
        code = status_of(exc).exit_code
    sys.exit(code)


def load_model(settings: StreamSettings) -> ModelRepository:
    """The one model this consumer answers for: a model directory, or a versions directory (its
    --version_policy; requests go to the default, newest, version)."""
    return ModelRepository.of_one_model(settings)


async def serve(settings: StreamSettings, dataplane: DataPlane) -> int:
    consumer = StreamConsumer(settings, dataplane)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _stop, consumer, signum)
    ops = ops_server(OpsApp(consumer.live, consumer.ready), settings.http_port)
    ops_task = asyncio.create_task(ops.serve())
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
