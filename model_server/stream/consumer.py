"""The consume -> predict -> produce -> commit loop, at least once.

aiokafka rather than confluent-kafka: it is asyncio-native, so a fetch's messages are answered in
the one event loop the data plane runs in; confluent-kafka's callbacks run on librdkafka's threads
and would have to be handed back to the loop one by one. aiokafka is pure Python too (no native
library in the image).

Per fetch: one ``DataPlane.infer_many`` (its requests predicted together, a bad message failing
alone), then the responses (or error records) are produced with ``acks=all`` in input order per
partition, and only once the broker has acknowledged them are the input offsets marked
answered; ``PartitionOffsets`` commits a partition only up to its first
message still in flight. Fetching pauses at ``--max_in_flight`` unanswered messages. A message
that cannot be answered goes to the error topic and the partition goes on. If the broker does
not acknowledge a record, the consumer stops without committing past it and exits 1; the
messages are answered again after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2

from ..core.dataplane import DataPlane
from ..core.errors import ModelServerError, RequestTooLarge, describe, status_of
from .messages import decode, error_headers, input_coordinates, response_record
from .metrics import END_TO_END_SECONDS, LAG, MESSAGES_IN, MESSAGES_OUT, MESSAGES_REJECTED
from .offsets import PartitionOffsets
from .settings import StreamSettings

logger = logging.getLogger(__name__)


MAX_REQUEST_BYTES = 1024 * 1024  # the producer's and, by default, the broker's largest message


@functools.lru_cache(maxsize=65536)
def _key_index(key: bytes, count: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % count  # murmur2 is pure Python: once per key


class TopicMissing(ModelServerError):
    """A topic the consumer writes to does not exist on the brokers."""


def connection_options(settings: StreamSettings) -> dict:
    """What the consumer and the producer both need to reach the brokers, TLS and SASL included."""
    options = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = create_ssl_context(
            cafile=settings.tls_ca, certfile=settings.tls_cert, keyfile=settings.tls_key
        )
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    return options


class StreamConsumer:
    def __init__(self, settings: StreamSettings, dataplane: DataPlane, board=None, number: int = 0):
        """``board``, ``number``: with --workers, the shared board where this worker (``number``)
        says how many partitions it holds (``workers.PartitionBoard``)."""
        self.settings = settings
        self._board, self._number = board, number
        self.dataplane = dataplane
        self.model_name = settings.model_name
        self.running = False
        self.failure: BaseException | None = None
        self._partitions: dict[TopicPartition, PartitionOffsets] = {}
        self._tasks: dict[TopicPartition, set[asyncio.Task]] = {}
        self._last_enqueued: asyncio.Future | None = None  # the previous fetch's answers are produced
        self._in_flight = 0
        self._slot_free = asyncio.Event()
        self._stopping = asyncio.Event()
        options = connection_options(settings)
        self.producer = AIOKafkaProducer(
            **options,
            acks="all",
            linger_ms=settings.linger_ms,
            max_batch_size=256 * 1024,
            max_request_size=MAX_REQUEST_BYTES,
        )
        self.consumer = AIOKafkaConsumer(
            **options,
            group_id=settings.group_id,
            enable_auto_commit=False,
            auto_offset_reset=settings.auto_offset_reset,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
        )
        self._output_partitions: dict[str, list[int]] = {}
        self._max_value_bytes = MAX_REQUEST_BYTES - 64 * 1024  # room for the key, headers and framing

    # -- health --------------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        model = self.dataplane.registry.get_model(self.model_name)
        if model is None or not model.ready:
            return False, "the model is not loaded"
        if not self.running:
            return False, "the consumer is not running"
        # With workers: some worker holds partitions (one beyond the partitions holds none, and waits).
        held = len(self._partitions) if self._board is None else self._board.total()
        if not held:
            return False, f"no partitions of {self.settings.input_topic} assigned yet"
        return True, ""

    def live(self) -> bool:
        return self.failure is None

    def stop(self) -> None:
        """Stop fetching; what is in flight is answered and committed (SIGTERM)."""
        self._stopping.set()
        self._slot_free.set()

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> int:
        """Consume until stop() or a failure; 0 after a clean drain, 1 after a failure."""
        settings = self.settings
        await self.producer.start()
        try:
            for topic in filter(None, (settings.output_topic, settings.error_topic)):
                self._output_partitions[topic] = await self._partitions_of(topic)
            self.consumer.subscribe([settings.input_topic], listener=_Rebalance(self))
            await self.consumer.start()
            self.running = True
            committer = asyncio.create_task(self._commit_periodically())
            try:
                await self._fetch_until_stopped()
            finally:
                await self._drain(list(self._tasks))
                committer.cancel()
                await self._commit()
                self.running = False
                await self.consumer.stop()  # leaves the group: the others take over at once
        finally:
            await self.producer.stop()
        return 0 if self.failure is None else 1

    async def _partitions_of(self, topic: str) -> list[int]:
        try:
            partitions = await asyncio.wait_for(self.producer.partitions_for(topic), 30)
        except (TimeoutError, KafkaError) as exc:
            raise TopicMissing(f"topic {topic} is not on {self.settings.bootstrap_servers}: {exc!r}") from None
        return sorted(partitions)

    async def _fetch_until_stopped(self) -> None:
        max_in_flight = self.settings.max_in_flight
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            free = max_in_flight - self._in_flight
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            fetched = await self.consumer.getmany(timeout_ms=100, max_records=free)
            if fetched:
                self._start(loop, fetched)

    def _start(self, loop, fetched: dict) -> None:
        """One task answers one fetch: its messages are predicted together (one estimator call
        per --max_batch_size rows), and their answers are produced in
        input order, after those of the fetch before."""
        spans, count = [], 0
        for tp, records in fetched.items():
            offsets = self._partitions.get(tp)
            if offsets is None:  # fetched just before its assignment was reported
                offsets = self._partitions[tp] = PartitionOffsets()
                self._tasks[tp] = set()
            offsets.start(records[-1].offset)  # the fetch's records of a partition: one span
            spans.append((offsets, records[-1].offset))
            count += len(records)
        MESSAGES_IN.inc(count)
        previous = self._last_enqueued
        enqueued = self._last_enqueued = loop.create_future()
        self._in_flight += count
        records = [record for batch in fetched.values() for record in batch]
        task = loop.create_task(self._answer(records, spans, previous, enqueued))
        for tp in fetched:
            self._tasks[tp].add(task)
        task.add_done_callback(lambda done: self._finished(done, fetched, count))

    async def _answer(self, records: list, spans: list, previous, enqueued: asyncio.Future) -> None:
        try:
            outcomes = await self._outcomes(records)
            if previous is not None and not previous.done():
                await previous  # answers leave in input order, so a key's order is kept
            deliveries = await self._enqueue(records, outcomes)
            enqueued.set_result(None)
            if deliveries:
                await asyncio.gather(*deliveries)
            for offsets, last in spans:
                offsets.answered(last)
            now, answered = time.time(), 0
            for record, outcome in zip(records, outcomes, strict=True):
                if outcome[3]:
                    answered += 1
                    if record.timestamp is not None and record.timestamp > 0:
                        END_TO_END_SECONDS.observe(max(0.0, now - record.timestamp / 1000))
            MESSAGES_OUT.inc(answered)
        except Exception as exc:  # the broker did not take the answers: never commit past them
            if self.failure is None:
                first = input_coordinates(records[0])
                logger.error("no acknowledgement for the answers from %s on: %r; stopping", first, exc)
                self.failure = exc
            self.stop()
        finally:
            if not enqueued.done():
                enqueued.set_result(None)

    def _finished(self, task: asyncio.Task, fetched: dict, count: int) -> None:
        self._in_flight -= count
        self._slot_free.set()
        for tp in fetched:
            tasks = self._tasks.get(tp)
            if tasks is not None:
                tasks.discard(task)

    async def _outcomes(self, records: list) -> list[tuple]:
        """(topic or None, value, headers, answered) for each record of a fetch: its response, or
        its error record. The fetch is one ``DataPlane.infer_many``: its requests are predicted
        together, a message that cannot be answered fails alone."""
        messages: list = [None] * len(records)
        model_name = self.model_name

        def read(i: int):
            message = messages[i] = decode(records[i])
            return message.request

        def encode(i: int, request, response):
            return response_record(messages[i], records[i], model_name, response)

        answers = await self.dataplane.infer_many(
            model_name, None, range(len(records)), read, protocol="kafka", encode=encode
        )
        outcomes, output_topic, max_bytes = [], self.settings.output_topic, self._max_value_bytes
        for record, message, answer in zip(records, messages, answers, strict=True):
            if isinstance(answer, Exception):
                outcomes.append(self._rejected(record, answer, message.request_id if message is not None else None))
            elif len(answer[0]) > max_bytes:  # the broker would refuse it, and retry forever
                too_large = RequestTooLarge(f"the response of {len(answer[0])} bytes exceeds {max_bytes}")
                outcomes.append(self._rejected(record, too_large, message.request_id))
            else:
                outcomes.append((output_topic, answer[0], answer[1], True))
        return outcomes

    def _rejected(self, record, exc: BaseException, request_id: str | None):
        status, reason = status_of(exc), describe(exc)
        MESSAGES_REJECTED.labels(str(status.http)).inc()
        error_topic = self.settings.error_topic
        if error_topic is None:
            logger.warning("%s not answered (%s): %s", input_coordinates(record), status.http, reason)
            return None, None, None, False
        return error_topic, record.value, error_headers(record, reason, status.http, request_id), False

    async def _enqueue(self, records: list, outcomes: list) -> list[asyncio.Future]:
        """Produce the answers in order, in one record batch per destination partition (a tenth
        of the cost of one send() each); the futures of their acknowledgements."""
        producer = self.producer
        batches, deliveries = {}, []
        for record, (topic, value, headers, _) in zip(records, outcomes, strict=True):
            if topic is None:
                continue
            partitions = self._output_partitions[topic]
            if record.key is None:  # keyless: the input's partition number, so its order is kept too
                partition = partitions[record.partition % len(partitions)]
            else:  # as the producer's default partitioner (and Kafka's Java client) would
                partition = partitions[_key_index(record.key, len(partitions))]
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[topic, partition] = producer.create_batch()
            if batch.append(key=record.key, value=value, timestamp=None, headers=headers) is None:  # full
                deliveries.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[topic, partition] = producer.create_batch()
                batch.append(key=record.key, value=value, timestamp=None, headers=headers)
        for (topic, partition), batch in batches.items():
            deliveries.append(await producer.send_batch(batch, topic, partition=partition))
        return deliveries

    # -- offsets -------------------------------------------------------------------------------

    async def _commit_periodically(self) -> None:
        interval = self.settings.commit_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await self._commit()
            await self._report_lag()

    async def _commit(self, partitions=None) -> None:
        chosen = self._partitions if partitions is None else {tp: self._partitions[tp] for tp in partitions}
        offsets = {tp: offset for tp, p in chosen.items() if (offset := p.to_commit()) is not None}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:  # in a rebalance: the next owner answers these again (duplicates)
            logger.warning("commit of %s failed: %r", offsets, exc)
            return
        for tp, offset in offsets.items():
            chosen[tp].committed = offset

    async def _report_lag(self) -> None:
        for tp, offsets in list(self._partitions.items()):
            end = self.consumer.highwater(tp)
            base = offsets.committed if offsets.committed is not None else offsets.first_fetched
            if base is None:  # nothing committed or fetched yet: where fetching starts
                try:
                    base = await self.consumer.position(tp)
                except KafkaError:
                    continue
            if end is not None:
                LAG.labels(tp.topic, str(tp.partition)).set(max(0, end - base))

    async def _drain(self, partitions) -> None:
        tasks = [task for tp in partitions for task in self._tasks.get(tp, ())]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _assigned(self, assigned) -> None:
        for tp in assigned:
            if tp not in self._partitions:
                self._partitions[tp] = PartitionOffsets()
                self._tasks[tp] = set()
            self._partitions[tp].committed = await self.consumer.committed(tp)
        self._post_partitions()
        logger.info("assigned %s", sorted(f"{tp.topic}/{tp.partition}" for tp in assigned))

    def _post_partitions(self) -> None:
        if self._board is not None:
            self._board.set(self._number, len(self._partitions))

    async def _revoked(self, revoked) -> None:
        """Before a partition goes to another replica: answer and commit what is in flight."""
        revoked = [tp for tp in revoked if tp in self._partitions]
        await self._drain(revoked)
        await self._commit(revoked)
        for tp in revoked:
            del self._partitions[tp]
            self._tasks.pop(tp, None)
            # Zero first: with workers the gauge sums every live worker's files, which remove() leaves.
            LAG.labels(tp.topic, str(tp.partition)).set(0)
            with contextlib.suppress(KeyError):
                LAG.remove(tp.topic, str(tp.partition))
        self._post_partitions()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: StreamConsumer):
        self.owner = owner

    async def on_partitions_revoked(self, revoked):
        await self.owner._revoked(revoked)

    async def on_partitions_assigned(self, assigned):
        await self.owner._assigned(assigned)
