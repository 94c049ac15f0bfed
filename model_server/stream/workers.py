"""``--workers N`` for the stream consumer: the model loaded once, then N forked consumers, each a
member of the consumer group (Kafka splits the input partitions between them).

The server's pre-fork machinery is reused as it is (``kserve/workers.py``, plain Python: no
KServe): ``Supervisor`` forks ``serve(number)``, replaces a worker that dies (backing off when it
keeps dying), passes SIGTERM on and waits for every worker; ``listening_socket`` binds the ops
port once, in the parent, and every worker serves /healthz, /readyz and /metrics on it;
prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set before prometheus_client
is imported) makes a scrape at any worker the sum of them all.

What is the stream's own: ``PartitionBoard``, the partitions each worker holds, in memory shared
by the workers, so that /readyz (answered by whichever worker takes the connection) says whether
the group consumes, not whether that one worker happens to hold a partition (with more workers
than partitions some hold none, and are still ready to take over).

A worker's SIGTERM is the single process's: stop fetching, answer and commit what is in flight,
leave the group, exit 0. A worker killed outright (SIGKILL, OOM) leaves its uncommitted messages
to the group: after ``--session_timeout_ms`` its partitions go to the others (and to its
replacement), which answer them again (at least once, as for a killed replica).
"""

from __future__ import annotations

import logging
import mmap
import struct

from ..core.errors import SettingsError, status_of
from ..kserve.workers import Supervisor, WorkerHealth, listening_socket

logger = logging.getLogger("model_server.stream")

_SLOT = struct.Struct("i")


class PartitionBoard:
    """How many input partitions each worker holds, one int per worker in an anonymous shared
    mapping (it survives fork; every worker writes its own slot only)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._map = mmap.mmap(-1, _SLOT.size * workers)

    def set(self, number: int, partitions: int) -> None:
        _SLOT.pack_into(self._map, number * _SLOT.size, partitions)

    def total(self) -> int:
        return sum(_SLOT.unpack_from(self._map, n * _SLOT.size)[0] for n in range(self.workers))


def serve_with_workers(settings, serve_one) -> int:
    """Fork ``settings.workers`` consumers over what the parent loaded; the supervisor's exit code.
    ``serve_one(number, ops_socket, board, health)``: one worker's whole life, its exit code."""
    try:
        ops_socket = listening_socket(settings.http_port)
    except SettingsError as exc:
        logger.error("%s", exc)
        return status_of(exc).exit_code
    health, board = WorkerHealth(), PartitionBoard(settings.workers)

    def serve(number: int) -> None:
        board.set(number, 0)  # a replacement starts with nothing; the dead worker's count goes
        raise SystemExit(serve_one(number, ops_socket, board, health))

    logger.info("consuming with %d workers", settings.workers)
    return Supervisor(settings.workers, serve, health).run()
