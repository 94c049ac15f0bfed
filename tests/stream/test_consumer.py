"""``python -m model_server.stream`` against a real broker (tansu), with a real Kafka client (aiokafka)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import defaultdict

import joblib
import numpy as np
import orjson

from tests.support.estimators import FailsOnNegative
from tests.support.kafka import (
    committed_offsets,
    consume,
    headers_of,
    produce,
    run,
    running_stream,
    spawn_stream,
    wait_for_records,
)

from .conftest import PARTITIONS

SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]
# Answers slowly (5 ms per estimator call, 2 rows per call: ~400 messages a second) and in small
# fetches, so that a signal lands while the stream is mid-way.
SLOW = ("--max_batch_size=2", "--max_in_flight=50")


def v2(request_id: str, row=SETOSA) -> bytes:
    return orjson.dumps({"id": request_id, "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": row}]})


def coordinates(topic: str, metadata) -> str:
    return f"{topic}/{metadata.partition}/{metadata.offset}"


def total(metrics: dict, name: str, **labels: str) -> float:
    """The sum of a series' samples whose labels include ``labels``."""
    return sum(v for (n, sample), v in metrics.items() if n == name and set(labels.items()) <= set(sample))


def answered_ids(records) -> list[str]:
    ids = []
    for record in records:
        request_id = headers_of(record)["model-server-request-id"]
        assert orjson.loads(record.value)["id"] == request_id  # the body carries the same id
        ids.append(request_id)
    return ids


def test_v2_v1_and_cloudevents_answered_with_key_id_and_input_offset(demo_model_dir, topics):
    structured = {
        "specversion": "1.0",
        "id": "ce-structured",
        "source": "tests",
        "type": "org.example.iris.predict",
        "data": {"instances": [SETOSA]},
    }
    binary_headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"ce-binary"),
        ("ce_source", b"tests"),
        ("ce_type", b"org.example.iris.infer"),
        ("content-type", b"application/json"),
    ]
    binary_data = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": VIRGINICA}]})
    messages = [
        (b"v2", v2("v2-request", SETOSA), None),
        (b"v1", orjson.dumps({"instances": [VIRGINICA, SETOSA]}), None),
        (b"ce-s", orjson.dumps(structured), [("content-type", b"application/cloudevents+json")]),
        (b"ce-b", binary_data, binary_headers),
    ]
    sent = dict(
        zip([key for key, _, _ in messages], run(produce(topics.bootstrap, topics.input, messages)), strict=True)
    )
    with running_stream(demo_model_dir, topics.bootstrap, *topics.args()) as stream:
        out = run(consume(topics.bootstrap, topics.output, len(messages)))
        metrics = stream.metrics()
    by_key = {record.key: record for record in out}
    assert len(out) == len(messages) and set(by_key) == set(sent)
    for key, record in by_key.items():
        assert headers_of(record)["model-server-input"] == coordinates(topics.input, sent[key])

    v2_reply = by_key[b"v2"]
    assert orjson.loads(v2_reply.value)["outputs"][0]["data"] == [0]
    assert orjson.loads(v2_reply.value)["id"] == headers_of(v2_reply)["model-server-request-id"] == "v2-request"

    v1_reply = by_key[b"v1"]
    assert orjson.loads(v1_reply.value) == {"predictions": [2, 0]}
    # A request without an id is identified by its input record, so a redelivery has the same.
    assert headers_of(v1_reply)["model-server-request-id"] == coordinates(topics.input, sent[b"v1"])

    structured_reply = by_key[b"ce-s"]
    assert headers_of(structured_reply)["content-type"] == "application/cloudevents+json"
    event = orjson.loads(structured_reply.value)
    assert (event["type"], event["subject"], event["id"]) == (
        "io.kserve.inference.response",
        "ce-structured",
        "ce-structured",
    )
    assert event["source"] == "io.kserve.inference.iris" and event["data"] == {"predictions": [0]}

    binary_reply = headers_of(by_key[b"ce-b"])
    assert binary_reply["ce_type"] == "io.kserve.inference.response"
    assert binary_reply["ce_subject"] == binary_reply["model-server-request-id"] == "ce-binary"
    assert orjson.loads(by_key[b"ce-b"].value)["outputs"][0]["data"] == [2]

    assert metrics[("model_server_stream_messages_in_total", ())] == 4
    assert metrics[("model_server_stream_messages_out_total", ())] == 4
    assert total(metrics, "model_server_requests_total", protocol="kafka", code="200", model="iris") == 4
    assert metrics[("model_server_stream_end_to_end_seconds_count", ())] == 4
    lag = {labels: value for (name, labels), value in metrics.items() if name == "model_server_stream_lag"}
    assert len(lag) == PARTITIONS and set(lag.values()) == {0}


def test_bad_messages_go_to_the_error_topic_as_they_came_and_the_partition_goes_on(tmp_path, topics):
    model_dir = tmp_path / "fragile"
    model_dir.mkdir()
    joblib.dump(FailsOnNegative().fit(np.zeros((1, 2))), model_dir / "model.joblib")
    bad = [
        (b"not json {", "request body is not valid JSON", "400"),
        (orjson.dumps({"instances": [[1, 2, 3]]}), "3 features", "400"),
        (orjson.dumps({"instances": [[-5, -5]]}), "RuntimeError: simulated model failure", "500"),
        (orjson.dumps({"rows": [[1, 1]]}), 'neither "inputs" (V2) nor "instances" (V1)', "400"),
        (orjson.dumps({"specversion": "1.0", "id": "e", "data": {}}), "missing required attributes: source", "400"),
    ]
    good = orjson.dumps({"instances": [[1, 1]]})
    # One key: every message in one partition, the good ones after the bad ones.
    messages = [(b"k", good, None), *[(b"k", value, [("trace", b"t1")]) for value, _, _ in bad], (b"k", good, None)]
    sent = run(produce(topics.bootstrap, topics.input, messages))
    with running_stream(model_dir, topics.bootstrap, *topics.args()) as stream:
        out = run(consume(topics.bootstrap, topics.output, 2))
        errors = run(consume(topics.bootstrap, topics.errors, len(bad)))
        metrics = stream.metrics()
    assert [orjson.loads(record.value) for record in out] == [{"predictions": [1]}] * 2
    assert [record.value for record in errors] == [value for value, _, _ in bad]  # the original bytes, in order
    for record, (_, reason, status), metadata in zip(errors, bad, sent[1:-1], strict=True):
        headers = headers_of(record)
        assert reason in headers["model-server-error"] and headers["model-server-status"] == status
        assert headers["model-server-input"] == coordinates(topics.input, metadata)
        assert headers["trace"] == "t1" and record.key == b"k"  # the record's own headers and key kept
    assert metrics[("model_server_stream_messages_rejected_total", (("code", "400"),))] == 4
    assert metrics[("model_server_stream_messages_rejected_total", (("code", "500"),))] == 1


def test_without_an_error_topic_bad_messages_are_logged_and_counted(demo_model_dir, topics):
    run(produce(topics.bootstrap, topics.input, [(b"k", b"\xff\xfe", None), (b"k", v2("after"), None)]))
    with running_stream(demo_model_dir, topics.bootstrap, *topics.args(error_topic=False)) as stream:
        out = run(consume(topics.bootstrap, topics.output, 1))
        metrics = stream.metrics()
    assert answered_ids(out) == ["after"]
    assert metrics[("model_server_stream_messages_rejected_total", (("code", "400"),))] == 1
    assert "not answered (400): request body is not valid JSON" in stream.log()


def test_order_per_key_and_consecutive_messages_predicted_together(demo_model_dir, topics):
    keys = [f"key-{k}" for k in range(10)]
    n = 600
    messages = [(keys[i % 10].encode(), v2(f"{keys[i % 10]}/{i // 10}"), None) for i in range(n)]
    run(produce(topics.bootstrap, topics.input, messages))
    with running_stream(demo_model_dir, topics.bootstrap, *topics.args()) as stream:
        out = run(consume(topics.bootstrap, topics.output, n))
        metrics = stream.metrics()
    sequences = defaultdict(list)
    for request_id in answered_ids(out):
        key, sequence = request_id.split("/")
        sequences[key].append(int(sequence))
    assert dict(sequences) == {key: list(range(n // 10)) for key in keys}  # each key in order, no gap, no repeat
    calls = total(metrics, "model_server_batch_size_count", model="iris")
    assert total(metrics, "model_server_batch_size_sum", model="iris") == n and calls < n / 4, f"{n} in {calls} calls"


def test_sigkill_mid_stream_then_restart_loses_nothing(slow_model_dir, topics):
    first = [(f"k{i % 16}".encode(), v2(f"first-{i}"), None) for i in range(1500)]
    run(produce(topics.bootstrap, topics.input, first))
    stream = spawn_stream(slow_model_dir, topics.bootstrap, *topics.args(*SLOW))
    try:
        stream.wait_ready()
        wait_for_records(topics.bootstrap, topics.output, 1)
        stream.process.send_signal(signal.SIGKILL)
        stream.process.wait(10)
    finally:
        stream.process.kill()
    answered_before = run(consume(topics.bootstrap, topics.output, 1))
    assert 0 < len(answered_before) < len(first), "the kill did not land mid-stream"
    second = [(f"k{i % 16}".encode(), v2(f"second-{i}"), None) for i in range(500)]
    run(produce(topics.bootstrap, topics.input, second))
    expected = {f"first-{i}" for i in range(1500)} | {f"second-{i}" for i in range(500)}
    with running_stream(slow_model_dir, topics.bootstrap, *topics.args()):
        deadline = time.monotonic() + 60
        while True:
            out = run(consume(topics.bootstrap, topics.output, len(expected)))
            ids = answered_ids(out)
            if set(ids) >= expected or time.monotonic() > deadline:
                break
    assert set(ids) == expected, f"lost: {sorted(expected - set(ids))[:10]}"
    # Duplicates are allowed (answered, not yet committed, when killed); each says the same.
    replies = defaultdict(set)
    for record in out:
        replies[headers_of(record)["model-server-request-id"]].add(record.value)
    assert all(len(values) == 1 for values in replies.values())


def test_sigterm_stops_fetching_answers_and_commits_what_is_in_flight_then_exits_0(slow_model_dir, topics):
    n = 3000
    run(produce(topics.bootstrap, topics.input, [(f"k{i % 16}".encode(), v2(f"r{i}"), None) for i in range(n)]))
    stream = spawn_stream(slow_model_dir, topics.bootstrap, *topics.args(*SLOW))
    try:
        stream.wait_ready()
        wait_for_records(topics.bootstrap, topics.output, 1)
        stream.process.send_signal(signal.SIGTERM)
        assert stream.process.wait(30) == 0, stream.log()[-3000:]
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit 30 s after SIGTERM:\n{stream.log()[-3000:]}") from None
    finally:
        stream.process.kill()
    out = run(consume(topics.bootstrap, topics.output, 1))
    committed = run(committed_offsets(topics.bootstrap, topics.group, topics.input, PARTITIONS))
    answered = [tuple(map(int, headers_of(r)["model-server-input"].split("/")[1:])) for r in out]
    # Everything fetched was answered and committed: the answers are exactly the committed offsets.
    assert sorted(answered) == [(p, offset) for p in range(PARTITIONS) for offset in range(committed[p])]
    assert 0 < len(answered) < n, "SIGTERM did not land mid-stream"
    assert "SIGTERM: no more fetching" in stream.log()


def test_a_group_of_two_processes_shares_the_partitions(demo_model_dir, topics):
    with (
        running_stream(demo_model_dir, topics.bootstrap, *topics.args()) as one,
        running_stream(demo_model_dir, topics.bootstrap, *topics.args()) as two,
    ):
        deadline = time.monotonic() + 30
        while not (one.ready() and two.ready()) and time.monotonic() < deadline:
            time.sleep(0.1)  # the first one rebalances when the second joins
        n = 400
        run(produce(topics.bootstrap, topics.input, [(f"k{i}".encode(), v2(f"r{i}"), None) for i in range(n)]))
        out = run(consume(topics.bootstrap, topics.output, n))
        metrics = [one.metrics(), two.metrics()]
    assert set(answered_ids(out)) == {f"r{i}" for i in range(n)}
    owned = [{dict(labels)["partition"] for name, labels in m if name == "model_server_stream_lag"} for m in metrics]
    assert owned[0] and owned[1] and not owned[0] & owned[1], owned
    assert owned[0] | owned[1] == {str(p) for p in range(PARTITIONS)}
    assert all(m[("model_server_stream_messages_out_total", ())] > 0 for m in metrics)


def test_a_poll_is_predicted_together_and_a_bad_message_among_good_ones_fails_alone(demo_model_dir, topics):
    rows = np.random.default_rng(3).uniform(0.1, 7.5, size=(300, 4)).round(2)
    bad = {
        40: b"not json {",
        41: orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]}),
        150: orjson.dumps({"instances": [[1, 2, None, 4]]}),  # null: iris does not take missing values
        299: orjson.dumps({"rows": [[1, 2, 3, 4]]}),
    }
    values = [bad.get(i, v2(f"r{i}", rows[i].tolist())) for i in range(len(rows))]
    sent = run(produce(topics.bootstrap, topics.input, [(b"one-key", value, None) for value in values]))
    with running_stream(demo_model_dir, topics.bootstrap, *topics.args()) as stream:
        out = run(consume(topics.bootstrap, topics.output, len(rows) - len(bad)))
        errors = run(consume(topics.bootstrap, topics.errors, len(bad)))
        metrics = stream.metrics()
    expected = joblib.load(demo_model_dir / "model.joblib").predict(rows)
    answers = {
        request_id: orjson.loads(r.value)["outputs"][0]["data"]
        for request_id, r in zip(answered_ids(out), out, strict=True)
    }
    assert answers == {f"r{i}": [int(expected[i])] for i in range(len(rows)) if i not in bad}  # each its own row's
    assert answered_ids(out) == [f"r{i}" for i in range(len(rows)) if i not in bad]  # in input order
    assert [record.value for record in errors] == list(bad.values())
    assert [headers_of(r)["model-server-input"] for r in errors] == [coordinates(topics.input, sent[i]) for i in bad]
    assert "the model expects 4" in headers_of(errors[1])["model-server-error"]
    calls = total(metrics, "model_server_batch_size_count", model="iris")
    assert total(metrics, "model_server_batch_size_sum", model="iris") == len(rows) - len(bad)
    assert calls <= 10, f"{len(rows) - len(bad)} messages in {calls} estimator calls"  # a few polls, one call each
