"""Payload events to a Kafka topic (aiokafka): one record per event, keyed by request id, the
value the event's JSON (``PayloadEvent.as_dict``).

Records are appended to aiokafka's record batches directly and each batch is sent to one
partition, the partitions taken in turn (what Kafka's sticky partitioner does): ``send()`` per
record would hash every key with aiokafka's pure-Python murmur2 and make a future per record, on
the serving process's event loop. So a request's record lands on one partition, but not on the
one a hash of its key picks: a reader looks a request up by key, not by partition."""

from __future__ import annotations

import asyncio
import itertools
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer

from ..core.errors import SettingsError
from ..core.payload_log import PayloadEvent, dumps

HEADERS = [("content-type", b"application/json")]
MAX_BATCH_BYTES = 512 * 1024
# Events encoded between two yields to the event loop: requests wait at most that many encodings.
CHUNK = 64


class KafkaSink:
    name = "kafka"

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._partitions = None  # an endless cycle over the topic's partitions

    @classmethod
    def from_url(cls, url: str) -> KafkaSink:
        parts = urlsplit(url)
        topic = parts.path.strip("/")
        if not parts.netloc or not topic:
            raise SettingsError(f"--log_sink {url}: expected kafka://host:port[,host:port]/topic")
        return cls(parts.netloc, topic)

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks=1,
                linger_ms=5,
                request_timeout_ms=10_000,
                # A drain's events in one record batch, not aiokafka's 16 KB ones: fewer batches and
                # futures per event (within the broker's default message.max.bytes, about 1 MB).
                max_batch_size=MAX_BATCH_BYTES,
            )
            try:
                await producer.start()
                partitions = await asyncio.wait_for(producer.partitions_for(self.topic), 10)
            except BaseException:
                await producer.stop()
                raise
            self._producer, self._partitions = producer, itertools.cycle(sorted(partitions))
        return self._producer

    async def send(self, events: list[PayloadEvent]) -> None:
        producer = await self._started()
        deliveries = []
        batch = producer.create_batch()
        for n, event in enumerate(events, 1):
            key, value = event.id.encode(), dumps(event.as_dict())
            if batch.append(key=key, value=value, timestamp=None, headers=HEADERS) is None:  # full
                deliveries.append(await producer.send_batch(batch, self.topic, partition=next(self._partitions)))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=HEADERS)
            if n % CHUNK == 0:
                await asyncio.sleep(0)
        deliveries.append(await producer.send_batch(batch, self.topic, partition=next(self._partitions)))
        await asyncio.gather(*deliveries)

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
