"""Shutdown that drains first: the sequence every server front end runs on SIGTERM or SIGINT.

Readiness answers not-ready at once (``ServingState.draining``) while the server keeps serving
for ``drain_seconds``: Kubernetes endpoints, kube-proxy and ingresses take seconds to stop
routing to a terminating pod, and a listener closed at once (stock KServe's, within 0.1 s)
refuses every request in that window. Then ``stop()`` closes the listeners and lets requests in
flight finish. A second signal skips what is left of the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable

from ..core.dataplane import ServingState

logger = logging.getLogger(__name__)


class Drain:
    def __init__(self, state: ServingState, drain_seconds: float, stop: Callable[[], Awaitable[None]]):
        self.state = state
        self.drain_seconds = drain_seconds
        self.stop = stop
        self._task: asyncio.Task | None = None
        self._skip = asyncio.Event()

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain_then_stop(signal.Signals(sig).name))
        else:
            logger.info("second signal: no more draining")
            self._skip.set()

    async def _drain_then_stop(self, name: str) -> None:
        self.state.draining = True
        logger.info("%s: readiness now answers not-ready; serving %gs more", name, self.drain_seconds)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._skip.wait(), self.drain_seconds)
        await self.stop()
