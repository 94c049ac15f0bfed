"""Adaptive micro-batching: concurrent requests share one estimator call.

scikit-learn's per-call overhead dwarfs its per-row cost (figures in docs/architecture.md), so
rows that arrive while the estimator is busy are queued and predicted together in the next call. Batches are predicted
in one thread, or on the event loop when the engine says a batch that small costs microseconds
(see engines.py). At low load a request is predicted at once (no added wait unless
``max_wait_s`` is set); under load batches grow up to ``max_rows``.

Requests are validated before they are queued, so bad input never reaches a batch. If the
estimator still fails on a batch, every request in it is retried alone: only the request that
causes the failure gets the error, never its batch mates.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

logger = logging.getLogger(__name__)

Predictions = dict[str, np.ndarray]
PredictFn = Callable[[object, frozenset], Predictions]


class MicroBatcher:
    def __init__(
        self,
        predict: PredictFn,
        executor: Executor,
        max_rows: int = 512,
        max_wait_s: float = 0.0,
        inline_rows: int = 0,
        inline_ok: Callable[[object], bool] | None = None,
        observe_rows: Callable[[int], None] | None = None,
    ):
        self._predict = predict
        self._executor = executor
        # Batches up to inline_rows (and that inline_ok accepts, if given) run on the event loop.
        self.inline_rows = inline_rows
        self._inline_ok = inline_ok
        self._observe_rows = observe_rows
        self.max_rows = max(1, max_rows)
        self.max_wait_s = max(0.0, max_wait_s)
        self._queue: deque[tuple[object, int, frozenset, asyncio.Future]] = deque()
        self._worker: asyncio.Task | None = None

    async def predict(self, X, outputs: frozenset) -> Predictions:
        """The requested outputs for the rows of X, predicted in a batch with concurrent requests."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((X, len(X), outputs, future))
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.max_wait_s and self._queued_rows() < self.max_rows:
                    await asyncio.sleep(self.max_wait_s)
                await self._run(self._take_batch())
        finally:
            self._worker = None

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing predicting."""
        return self._worker is None and not self._queue

    def _queued_rows(self) -> int:
        return sum(item[1] for item in self._queue)

    def _take_batch(self) -> list:
        batch = [self._queue.popleft()]  # a request larger than max_rows still runs, alone
        rows = batch[0][1]
        while self._queue and rows + self._queue[0][1] <= self.max_rows:
            item = self._queue.popleft()
            batch.append(item)
            rows += item[1]
        return batch

    async def _run(self, batch: list) -> None:
        batch = [item for item in batch if not item[3].done()]  # drop requests whose client left
        if not batch:
            return
        loop = asyncio.get_running_loop()
        X = concat([item[0] for item in batch])
        outputs = frozenset().union(*(item[2] for item in batch))
        if self._observe_rows is not None:
            self._observe_rows(len(X))
        try:
            if len(X) <= self.inline_rows and (self._inline_ok is None or self._inline_ok(X)):
                # microseconds of work: cheaper than a thread handoff
                predictions = self._predict(X, outputs)
            else:
                predictions = await loop.run_in_executor(self._executor, self._predict, X, outputs)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][3], exception=exc)
                return
            logger.warning("batch of %d requests failed (%s); retrying each alone", len(batch), exc)
            for item in batch:
                await self._run([item])
            return
        start = 0
        for _, n, wanted, future in batch:
            _settle(future, result={name: predictions[name][start : start + n] for name in wanted})
            start += n


def concat(parts: list):
    """Rows of several checked inputs as one (arrays, column batches or DataFrames of one layout)."""
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    if isinstance(parts[0], dict):  # schema.ColumnBatch
        return type(parts[0])((name, np.concatenate([p[name] for p in parts])) for name in parts[0])
    import pandas as pd

    return pd.concat(parts, ignore_index=True)


def _settle(future: asyncio.Future, result=None, exception: BaseException | None = None) -> None:
    if future.done():
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)
