"""Payload events to a Kafka topic (aiokafka): one record per event, keyed by request id (a
request's records land on one partition, in order), the value the event's JSON
(``PayloadEvent.as_dict``)."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from aiokafka import AIOKafkaProducer

from ..core.errors import SettingsError
from ..core.payload_log import PayloadEvent, dumps


class KafkaSink:
    name = "kafka"

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap = bootstrap
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

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
                bootstrap_servers=self.bootstrap, acks=1, linger_ms=5, request_timeout_ms=10_000
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def send(self, events: list[PayloadEvent]) -> None:
        producer = await self._started()
        headers = [("content-type", b"application/json")]
        futures = [
            await producer.send(self.topic, dumps(e.as_dict()), key=e.id.encode(), headers=headers) for e in events
        ]
        await asyncio.gather(*futures)

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
