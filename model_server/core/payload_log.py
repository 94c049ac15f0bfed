"""Payload logging: each logged inference becomes one ``PayloadEvent``, put on a bounded in-memory
queue and handed to a sink by a background task of the serving process.

The request never waits for the sink: ``PayloadLogger.offer`` appends to a deque; a full queue
(the sink slower than the traffic, or down) drops the event and counts it. The drain wakes every
``linger_seconds`` and takes what gathered, not once per event (an ``asyncio.Queue`` would wake
it for every request, and every event would then be sent on its own). A failing sink is retried
with exponential backoff; a batch that still fails is counted as failed and given up, so memory
stays bounded by ``queue_size`` events whatever the sink does. Every outcome is counted in
``model_server_payload_log_events_total{sink,outcome="sent|dropped|failed"}``.

The core knows the queue and the ``Sink`` protocol only. The sinks (HTTP CloudEvents, Kafka,
Parquet / JSON Lines files) need transport libraries and live in ``model_server/payload_log/``;
front ends build them from ``--log_sink`` (``model_server.payload_log.payload_logger``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import orjson

from .codec import InferenceResponse, V1Request, V2Request
from .metrics import payload_log_counter, payload_log_retries

logger = logging.getLogger(__name__)

MODES = ("off", "request", "response", "all")


@dataclass
class PayloadEvent:
    """One inference as it was logged. ``request`` and ``response`` are the decoded objects,
    turned into JSON by the background task (``as_dict``), never on the request path."""

    id: str | None  # None: the request had none; the drain gives it one before the sink sees it
    model: str
    version: str | None
    protocol: str
    started: float  # seconds since the epoch, when the request reached the data plane
    latency_seconds: float
    status: int  # the HTTP status the request was answered with (gRPC and Kafka: the same error's)
    request: V1Request | V2Request | None = None  # None: not logged (mode), or the body did not decode
    response: InferenceResponse | None = None
    error: str | None = None
    traceparent: str | None = None

    @property
    def ended(self) -> float:
        return self.started + self.latency_seconds

    def request_json(self) -> dict | None:
        request = self.request
        if isinstance(request, V2Request):
            return {"id": request.id, "inputs": [_tensor(t) for t in request.inputs]}
        if isinstance(request, V1Request):
            return {"instances": request.instances}
        return None

    def response_json(self) -> dict | None:
        if self.error is not None:
            return {"error": self.error}
        if self.response is None:
            return None
        return {
            "model_name": self.response.model_name,
            "model_version": self.response.model_version,
            "id": self.id,
            "outputs": [_tensor(o) for o in self.response.outputs],
        }

    def as_dict(self) -> dict:
        """The event as JSON-able values: what every sink writes (Kafka values, file rows)."""
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "protocol": self.protocol,
            "started": self.started,
            "ended": self.ended,
            "latency_ms": self.latency_seconds * 1000,
            "status": self.status,
            "error": self.error,
            "traceparent": self.traceparent,
            "request": self.request_json(),
            "response": self.response_json(),
        }


def _tensor(tensor) -> dict:
    data = np.asarray(tensor.data)
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(data.shape), "data": data.ravel()}


def _default(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot log a {type(value).__name__}")


def dumps(value) -> bytes:
    """JSON bytes of an event's values (numpy arrays and BYTES tensors included)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


class Sink(Protocol):
    """Where events go. ``send`` raises when they did not get there (the logger retries);
    ``flush`` is called when the queue has been idle a while (a file sink writes a due file);
    ``close`` delivers what it holds and lets go of its connections."""

    name: str  # the sink label of the metrics: http, kafka, file, s3

    async def send(self, events: list[PayloadEvent]) -> None: ...

    async def flush(self) -> None: ...

    async def close(self) -> None: ...


class PayloadLogger:
    """The queue and its drain, one per process (a forked worker starts its own task: the queue
    and task are made on first use in the running event loop)."""

    def __init__(
        self,
        sink: Sink,
        mode: str = "all",
        sample_rate: float = 1.0,
        queue_size: int = 10_000,
        batch_size: int = 256,
        linger_seconds: float = 0.02,
        retries: int = 5,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        idle_seconds: float = 1.0,
        close_timeout: float = 5.0,
    ):
        if mode not in MODES[1:]:
            raise ValueError(f"payload log mode must be one of {', '.join(MODES[1:])}, got {mode!r}")
        self.sink = sink
        self.mode = mode
        self.sample_rate = sample_rate
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.linger_seconds = linger_seconds
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.idle_seconds = idle_seconds
        self.close_timeout = close_timeout
        self._queue: deque[PayloadEvent] = deque()
        self._in_flight: list[PayloadEvent] = []  # the batch being delivered
        self.logs_request = mode in ("request", "all")
        self.logs_response = mode in ("response", "all")
        self._loop = self._task = None
        self._sent = payload_log_counter(sink.name, "sent")
        self._dropped = payload_log_counter(sink.name, "dropped")
        self._failed = payload_log_counter(sink.name, "failed")
        self._retried = payload_log_retries(sink.name)

    def sampled(self) -> bool:
        """Whether this request is logged (drawn once per request, before it is read)."""
        return self.sample_rate >= 1.0 or random.random() < self.sample_rate

    def offer(self, event: PayloadEvent) -> None:
        """Queue ``event`` for the sink, or drop and count it when the queue is full. Never waits."""
        if not self.logs_request:
            event.request = None
        if not self.logs_response:
            event.response = None
            event.error = None
        if self._loop is not asyncio.get_running_loop():
            self._start_drain()
        if len(self._queue) >= self.queue_size:
            self._dropped.inc()
        else:
            self._queue.append(event)

    def _start_drain(self) -> None:
        """The drain task of this event loop (a forked worker's first request starts its own)."""
        self._loop = asyncio.get_running_loop()
        self._queue.clear()  # events queued before a fork are the parent's
        # Ids for requests that came without one: unique per process (a random prefix, made after
        # any fork) and a counter; a uuid4 each costs several times more.
        self._ids = map(f"{secrets.token_hex(8)}-{{}}".format, itertools.count())
        self._task = self._loop.create_task(self._drain(), name="payload-log")

    async def _drain(self) -> None:
        queue, idle = self._queue, 0.0
        while True:
            await asyncio.sleep(self.linger_seconds)
            if not queue:
                idle += self.linger_seconds
                if idle >= self.idle_seconds:
                    idle = 0.0
                    await self._guarded(self.sink.flush)
                continue
            idle = 0.0
            for _ in range((len(queue) + self.batch_size - 1) // self.batch_size):
                await self._deliver([queue.popleft() for _ in range(min(self.batch_size, len(queue)))])

    async def _deliver(self, batch: list[PayloadEvent]) -> None:
        for event in batch:
            if event.id is None:
                event.id = next(self._ids)
        self._in_flight = batch
        delay = self.backoff_seconds
        for attempt in range(self.retries + 1):
            try:
                await self.sink.send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if attempt == self.retries:
                    logger.warning(
                        "payload log sink %s failed %d times, %d events lost: %s",
                        self.sink.name,
                        attempt + 1,
                        len(batch),
                        exc,
                    )
                    self._failed.inc(len(batch))
                    self._in_flight = []
                    return
                self._retried.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_seconds)
            else:
                self._sent.inc(len(batch))
                self._in_flight = []
                return

    async def _guarded(self, call) -> None:
        try:
            await call()
        except Exception as exc:  # a flush that fails is retried at the next idle tick
            logger.warning("payload log sink %s: %s", self.sink.name, exc)

    async def close(self) -> None:
        """Deliver what is queued (within ``close_timeout``), then close the sink; what could not
        be delivered by then is counted failed."""
        task = self._task
        if task is not None and asyncio.get_running_loop() is self._loop:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            batch = self._in_flight + list(self._queue)
            self._queue.clear()
            if batch:
                try:
                    await asyncio.wait_for(self._deliver(batch), self.close_timeout)
                except TimeoutError:
                    self._failed.inc(len(batch))
        await self._guarded(self.sink.close)
