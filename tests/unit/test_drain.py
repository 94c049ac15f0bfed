"""SIGTERM's drain in-process: readiness off at once, serving on for drain_seconds, then stop();
a second signal skips the rest of the drain."""

import asyncio
import os
import signal
import time

from model_server.core.dataplane import ServingState
from model_server.http.drain import Drain


def run_drain(drain_seconds: float, signals: int) -> tuple[list, float]:
    events = []

    async def main():
        state = ServingState()
        stopped = asyncio.Event()

        async def stop():
            events.append(("stop", state.draining))
            stopped.set()

        loop = asyncio.get_running_loop()
        Drain(state, drain_seconds, stop).install(loop)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.05)
            events.append(("after signal", state.draining))
            for _ in range(signals - 1):
                os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait_for(stopped.wait(), 10)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    start = time.monotonic()
    asyncio.run(main())
    return events, time.monotonic() - start


def test_readiness_goes_off_at_once_and_stop_comes_after_the_drain():
    events, took = run_drain(0.5, signals=1)
    assert events == [("after signal", True), ("stop", True)]
    assert took >= 0.5


def test_a_second_signal_skips_the_rest_of_the_drain():
    events, took = run_drain(30, signals=2)
    assert events == [("after signal", True), ("stop", True)]
    assert took < 10
