"""MicroBatcher: concurrent requests share estimator calls; a failure stays with its request."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from model_server.core.batching import MicroBatcher


class RecordingEstimator:
    """Predicts row sums; remembers each call's row count; rows starting with -1 raise."""

    def __init__(self):
        self.calls = []
        self.threads = []
        self.gate = threading.Event()

    def __call__(self, X, outputs):
        self.gate.wait(5)
        self.calls.append(len(X))
        self.threads.append(threading.current_thread())
        if (X[:, 0] == -1).any():
            raise RuntimeError("bad row")
        return {"sum": X.sum(axis=1), "twice": X.sum(axis=1) * 2}


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_are_batched_and_split_back():
    estimator = RecordingEstimator()

    async def scenario():
        batcher = MicroBatcher(estimator, ThreadPoolExecutor(1), max_rows=64)
        first = asyncio.create_task(batcher.predict(np.array([[1.0, 1.0]]), frozenset({"sum"})))
        await asyncio.sleep(0.05)  # the first call is now blocked in the estimator
        others = [
            asyncio.create_task(batcher.predict(np.full((i, 2), float(i)), frozenset({"sum", "twice"})))
            for i in range(1, 6)
        ]
        await asyncio.sleep(0.05)
        estimator.gate.set()
        return await first, await asyncio.gather(*others)

    first, others = run(scenario())
    assert estimator.calls == [1, 15]  # the five queued requests went in one call
    assert set(first) == {"sum"} and first["sum"].tolist() == [2.0]
    for i, result in enumerate(others, start=1):
        assert result["sum"].tolist() == [2.0 * i] * i and result["twice"].tolist() == [4.0 * i] * i


def test_max_rows_bounds_a_batch_but_not_a_single_request():
    estimator = RecordingEstimator()
    estimator.gate.set()

    async def scenario():
        batcher = MicroBatcher(estimator, ThreadPoolExecutor(1), max_rows=4)
        sizes = [3, 3, 10, 1, 1]
        return await asyncio.gather(*(batcher.predict(np.ones((n, 1)), frozenset({"sum"})) for n in sizes))

    results = run(scenario())
    assert [len(r["sum"]) for r in results] == [3, 3, 10, 1, 1]
    assert max(estimator.calls) == 10 and sum(estimator.calls) == 18
    assert all(n <= 4 for n in estimator.calls if n != 10)


def test_a_failing_request_fails_alone():
    estimator = RecordingEstimator()

    async def scenario():
        batcher = MicroBatcher(estimator, ThreadPoolExecutor(1), max_rows=64)
        blocker = asyncio.create_task(batcher.predict(np.ones((1, 1)), frozenset({"sum"})))
        await asyncio.sleep(0.05)
        rows = [np.array([[-1.0]]) if i == 2 else np.array([[float(i)]]) for i in range(5)]
        tasks = [asyncio.create_task(batcher.predict(r, frozenset({"sum"}))) for r in rows]
        await asyncio.sleep(0.05)
        estimator.gate.set()
        await blocker
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(scenario())
    assert isinstance(results[2], RuntimeError)
    assert [r["sum"].tolist() for i, r in enumerate(results) if i != 2] == [[0.0], [1.0], [3.0], [4.0]]


def test_wait_lets_a_batch_form_when_idle():
    estimator = RecordingEstimator()
    estimator.gate.set()

    async def scenario():
        batcher = MicroBatcher(estimator, ThreadPoolExecutor(1), max_rows=64, max_wait_s=0.2)
        first = asyncio.create_task(batcher.predict(np.ones((1, 1)), frozenset({"sum"})))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(batcher.predict(np.ones((1, 1)), frozenset({"sum"})))
        return await first, await second

    run(scenario())
    assert estimator.calls == [2]


@pytest.mark.parametrize("max_rows", [0, -3])
def test_max_rows_is_at_least_one(max_rows):
    assert MicroBatcher(RecordingEstimator(), ThreadPoolExecutor(1), max_rows=max_rows).max_rows == 1


def test_small_batches_run_on_the_loop_thread_larger_ones_in_the_executor():
    estimator = RecordingEstimator()
    estimator.gate.set()

    async def scenario():
        batcher = MicroBatcher(estimator, ThreadPoolExecutor(1), max_rows=64, inline_rows=2)
        small = await batcher.predict(np.ones((2, 1)), frozenset({"sum"}))
        large = await batcher.predict(np.ones((3, 1)), frozenset({"sum"}))
        failed = await asyncio.gather(
            batcher.predict(np.full((1, 1), -1.0), frozenset({"sum"})), return_exceptions=True
        )
        return small, large, failed

    small, large, failed = run(scenario())
    assert small["sum"].tolist() == [1.0, 1.0] and large["sum"].tolist() == [1.0] * 3
    assert isinstance(failed[0], RuntimeError)  # an error raised on the loop reaches its request too
    main = threading.main_thread()
    assert [thread is main for thread in estimator.threads] == [True, False, True]
