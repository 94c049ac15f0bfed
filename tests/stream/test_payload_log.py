"""The Kafka consumer logs payloads through the same core hook as the HTTP and gRPC server:
requests consumed from a real broker (tansu) are logged, with protocol "kafka", to the same
broker's payload topic."""

from __future__ import annotations

import uuid

import orjson

from tests.support.kafka import consume, create_topics, produce, run, running_stream

from .conftest import PARTITIONS


def v2(request_id: str, row) -> bytes:
    return orjson.dumps({"id": request_id, "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": row}]})


def test_consumed_requests_are_logged_with_the_kafka_protocol(demo_model_dir, topics):
    payloads = f"payloads-{uuid.uuid4().hex[:8]}"
    run(create_topics(topics.bootstrap, PARTITIONS, payloads))
    rows = {f"k{i}": [5.1 + i / 10, 3.5, 1.4, 0.2] for i in range(5)}
    sink = f"--log_sink=kafka://{topics.bootstrap}/{payloads}"
    with running_stream(demo_model_dir, topics.bootstrap, *topics.args(), "--log_payloads=all", sink):
        run(produce(topics.bootstrap, topics.input, [(k.encode(), v2(k, row), None) for k, row in rows.items()]))
        answers = run(consume(topics.bootstrap, topics.output, len(rows)))
        logged = run(consume(topics.bootstrap, payloads, len(rows)))
    by_id = {record.key.decode(): orjson.loads(record.value) for record in logged}
    assert set(by_id) == set(rows)
    answered = {orjson.loads(r.value)["id"]: orjson.loads(r.value)["outputs"] for r in answers}
    for request_id, row in rows.items():
        event = by_id[request_id]
        assert event["protocol"] == "kafka" and event["status"] == 200
        assert event["request"]["inputs"][0]["data"] == row
        assert event["response"]["outputs"] == answered[request_id]
