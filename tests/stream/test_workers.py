"""``python -m model_server.stream --workers N`` against a real broker (tansu): the model loaded once,
N forked consumers sharing the group's partitions, a killed worker replaced, SIGTERM draining
them all, one /metrics summing them."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time

import joblib
import numpy as np
import orjson
import pytest

from tests.support.kafka import committed_offsets, consume, headers_of, produce, run, spawn_stream, wait_for_records

from .conftest import PARTITIONS
from .test_consumer import SLOW, answered_ids, total, v2

WORKER_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")
ASSIGNED = re.compile(r"\[(\d+)\] model_server\.stream\.consumer: assigned \[(.*)\]")


def worker_pids(log: str) -> dict[int, int]:
    """{worker number: pid} as the supervisor last started them."""
    return {int(number): int(pid) for number, pid in WORKER_STARTED.findall(log)}


def holdings(log: str) -> dict[int, set[str]]:
    """{pid: the partitions it was last assigned}, from the workers' log lines."""
    held = {}
    for pid, partitions in ASSIGNED.findall(log):
        held[int(pid)] = {p.strip(" '").rsplit("/", 1)[1] for p in partitions.split(",") if p.strip()}
    return held


@contextlib.contextmanager
def stream_with_workers(model_dir, topics, *extra: str):
    stream = spawn_stream(model_dir, topics.bootstrap, *topics.args(*extra), "--workers=2")
    try:
        yield stream
    finally:
        pids = worker_pids(stream.log()).values()
        if stream.process.poll() is None:
            stream.process.terminate()
            try:
                stream.process.wait(30)
            except subprocess.TimeoutExpired:
                stream.process.kill()
        for pid in pids:  # never leave a worker consuming after its supervisor
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def wait_for_split(stream, timeout: float = 30) -> dict[int, set[str]]:
    """Until both workers hold partitions and together all of them (after the group's rebalance)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = set(worker_pids(stream.log()).values())
        held = {pid: parts for pid, parts in holdings(stream.log()).items() if pid in live}
        if len(held) == 2 and all(held.values()) and set().union(*held.values()) == {str(p) for p in range(PARTITIONS)}:
            return held
        time.sleep(0.1)
    raise AssertionError(f"the partitions were not split between two workers:\n{stream.log()[-3000:]}")


def test_two_workers_split_the_partitions_and_one_scrape_sums_them(demo_model_dir, topics):
    with stream_with_workers(demo_model_dir, topics) as stream:
        stream.wait_ready()
        held = wait_for_split(stream)
        a, b = held.values()
        assert not a & b, held  # each partition consumed by one worker only
        n = 400
        rows = np.random.default_rng(5).uniform(0.1, 7.5, size=(n, 4)).round(2)
        run(
            produce(
                topics.bootstrap,
                topics.input,
                [(f"k{i}".encode(), v2(f"r{i}", rows[i].tolist()), None) for i in range(n)],
            )
        )
        out = run(consume(topics.bootstrap, topics.output, n))
        deadline = time.monotonic() + 10
        while True:  # the last acknowledgements may be counted a moment after the records are readable
            metrics = stream.metrics()
            if metrics[("model_server_stream_messages_out_total", ())] >= n or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        log = stream.log()
    expected = joblib.load(demo_model_dir / "model.joblib").predict(rows)
    answers = {
        request_id: orjson.loads(r.value)["outputs"][0]["data"]
        for request_id, r in zip(answered_ids(out), out, strict=True)
    }
    assert answers == {f"r{i}": [int(expected[i])] for i in range(n)}
    assert len(out) == n  # nothing answered twice
    # One scrape, every worker: the counters are the sum over both processes.
    assert metrics[("model_server_stream_messages_in_total", ())] == n
    assert metrics[("model_server_stream_messages_out_total", ())] == n
    assert total(metrics, "model_server_requests_total", protocol="kafka", code="200", model="iris") == n
    lag = {dict(labels)["partition"]: v for (name, labels), v in metrics.items() if name == "model_server_stream_lag"}
    assert set(lag) == {str(p) for p in range(PARTITIONS)} and set(lag.values()) == {0}
    assert len(re.findall(r"loaded .*model\.joblib", log)) == 1, "the model must load once, before forking"


def test_a_sigkilled_worker_is_replaced_and_no_message_is_left_unanswered(slow_model_dir, topics):
    n = 1500
    run(produce(topics.bootstrap, topics.input, [(f"k{i % 16}".encode(), v2(f"m{i}"), None) for i in range(n)]))
    with stream_with_workers(slow_model_dir, topics, *SLOW) as stream:
        stream.wait_ready()
        wait_for_records(topics.bootstrap, topics.output, 1)
        victim = worker_pids(stream.log())[1]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while worker_pids(stream.log()).get(1) == victim and time.monotonic() < deadline:
            time.sleep(0.1)
        replacement = worker_pids(stream.log()).get(1)
        assert replacement not in (None, victim), stream.log()[-3000:]
        assert f"worker 1 (pid {victim}) died (-9)" in stream.log()
        expected = {f"m{i}" for i in range(n)}
        deadline = time.monotonic() + 90
        while True:
            out = run(consume(topics.bootstrap, topics.output, n))
            ids = set(answered_ids(out))
            if ids >= expected or time.monotonic() > deadline:
                break
        assert ids == expected, f"unanswered: {sorted(expected - ids)[:10]}"
        os.kill(replacement, 0)  # the replacement is alive and a member of the group
        wait_for_split(stream)
        stream.process.terminate()
        assert stream.process.wait(30) == 0, stream.log()[-3000:]


def test_sigterm_stops_every_worker_with_what_they_answered_committed(slow_model_dir, topics):
    n = 3000
    run(produce(topics.bootstrap, topics.input, [(f"k{i % 16}".encode(), v2(f"r{i}"), None) for i in range(n)]))
    with stream_with_workers(slow_model_dir, topics, *SLOW) as stream:
        stream.wait_ready()
        wait_for_split(stream)
        wait_for_records(topics.bootstrap, topics.output, 50)
        pids = set(worker_pids(stream.log()).values())
        stream.process.send_signal(signal.SIGTERM)
        try:
            assert stream.process.wait(30) == 0, stream.log()[-3000:]
        except subprocess.TimeoutExpired:
            raise AssertionError(f"no exit 30 s after SIGTERM:\n{stream.log()[-3000:]}") from None
        log = stream.log()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # every worker has exited too
    assert log.count("SIGTERM: no more fetching") == 2, log[-3000:]
    out = run(consume(topics.bootstrap, topics.output, 1))
    committed = run(committed_offsets(topics.bootstrap, topics.group, topics.input, PARTITIONS))
    answered = [tuple(map(int, headers_of(r)["model-server-input"].split("/")[1:])) for r in out]
    # Each worker answered and committed what it had fetched: the answers are exactly the committed offsets.
    assert sorted(answered) == [(p, offset) for p in range(PARTITIONS) for offset in range(committed[p])]
    assert 0 < len(answered) < n, "SIGTERM did not land mid-stream"
