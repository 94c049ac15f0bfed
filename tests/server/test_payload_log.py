"""Payload logging end to end, each sink against a real peer: a CloudEvents receiver (an HTTP
server here, decoding with the cloudevents SDK, as a KServe logger receiver does), the tansu Kafka
broker, a local folder and moto's S3 server (Parquet read back with pyarrow, request by request),
and a sink that is down (events dropped or failed and counted, every request answered, the server
ready throughout)."""

from __future__ import annotations

import http.server
import json
import threading
import time

import httpx
import numpy as np
import pytest

from tests.support.kafka import consume, create_topics, run, start_broker
from tests.support.metrics import scrape, total
from tests.support.s3 import moto_s3
from tests.support.servers import free_port, start_server

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ROWS = np.random.default_rng(25).uniform(0.1, 7.9, size=(12, 4)).round(2)


def v2_body(request_id: str, rows) -> dict:
    rows = np.atleast_2d(rows)
    return {
        "id": request_id,
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}],
    }


def send_traffic(served, count: int = len(ROWS)) -> dict[str, dict]:
    """``count`` single-row V2 requests and one bad one; the answers by request id."""
    answers = {}
    with httpx.Client(base_url=served.http_url, timeout=10) as client:
        for i in range(count):
            request_id = f"req-{i}"
            answer = client.post(
                "/v2/models/iris/infer", json=v2_body(request_id, ROWS[i]), headers={"traceparent": TRACEPARENT}
            )
            assert answer.status_code == 200, answer.text
            answers[request_id] = answer.json()
        bad = client.post("/v2/models/iris/infer", json=v2_body("req-bad", [[1.0, 2.0, 3.0]]))
        assert bad.status_code == 400
        answers["req-bad"] = bad.json()
    return answers


def until(predicate, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def events(served, outcome: str, sink: str) -> float:
    return total(scrape(served.http_url), "model_server_payload_log_events_total", sink=sink, outcome=outcome)


# -- HTTP: CloudEvents, binary mode, as KServe's logger posts them --------------------------------------


class Receiver(http.server.BaseHTTPRequestHandler):
    received: list
    status = 202

    def do_POST(self):
        from cloudevents.http import from_http

        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((dict(self.headers), from_http(dict(self.headers), body)))
        self.send_response(self.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cloudevent_receiver():
    handler = type("TestReceiver", (Receiver,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler.received
    server.shutdown()


def test_http_sink_posts_kserve_logger_cloudevents(demo_model_dir, cloudevent_receiver):
    url, received = cloudevent_receiver
    with start_server(demo_model_dir, "iris", "--log_payloads", "all", "--log_sink", url) as served:
        answers = send_traffic(served, 4)
        until(lambda: len(received) >= 9, what="9 CloudEvents (4 requests and answers, one error)")
        # The receiver holds an event before the sink's POST returns and counts it: wait for the count.
        until(lambda: events(served, "sent", "http") == 5, what="5 events counted sent")
    by_kind = {}
    for headers, event in received:
        by_kind[(event["id"], event["type"])] = (headers, event)
    for i in range(4):
        request_id = f"req-{i}"
        _, request = by_kind[(request_id, "org.kubeflow.serving.inference.request")]
        headers, response = by_kind[(request_id, "org.kubeflow.serving.inference.response")]
        assert request.get_data()["inputs"][0]["data"] == ROWS[i].tolist()
        assert response.get_data()["outputs"] == answers[request_id]["outputs"]
        for event in (request, response):
            assert event["inferenceservicename"] == "iris" and event["component"] == "predictor"
            assert "namespace" in event.get_attributes() and "endpoint" in event.get_attributes()
            assert event["traceparent"] == TRACEPARENT and event["specversion"] == "1.0"
        assert "ce-id" in {k.lower() for k in headers}  # binary mode: attributes in headers, data the body
    # The error is logged too, with its status (KServe's logger sees 200s only).
    _, error = by_kind[("req-bad", "org.kubeflow.serving.inference.response")]
    assert error["status"] == "400" and "error" in error.get_data()


def test_grpc_requests_are_logged_with_their_metadata(demo_model_dir, cloudevent_receiver):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    url, received = cloudevent_receiver
    with start_server(demo_model_dir, "iris", "--log_payloads", "request", "--log_sink", url) as served:
        request = pb.ModelInferRequest(
            model_name="iris",
            inputs=[
                pb.ModelInferRequest.InferInputTensor(
                    name="input-0",
                    datatype="FP64",
                    shape=[1, 4],
                    contents=pb.InferTensorContents(fp64_contents=ROWS[0].tolist()),
                )
            ],
        )
        metadata = (("traceparent", TRACEPARENT), ("x-request-id", "grpc-call-1"))
        with grpc.insecure_channel(served.grpc_target) as channel:
            GRPCInferenceServiceStub(channel).ModelInfer(request, metadata=metadata, timeout=30)
        until(lambda: received, what="the gRPC request's CloudEvent")
    ((_, event),) = received  # mode request: no response event
    assert event["type"] == "org.kubeflow.serving.inference.request" and event["id"] == "grpc-call-1"
    assert event["protocol"] == "grpc" and event["traceparent"] == TRACEPARENT
    assert event.get_data()["inputs"][0]["data"] == ROWS[0].tolist()


# -- Kafka ------------------------------------------------------------------------------------------


def test_kafka_sink_writes_one_record_per_request_keyed_by_its_id(demo_model_dir):
    with start_broker() as broker:
        run(create_topics(broker.bootstrap, 2, "payloads"))
        sink = f"kafka://{broker.bootstrap}/payloads"
        with start_server(demo_model_dir, "iris", "--log_payloads", "all", "--log_sink", sink) as served:
            answers = send_traffic(served)
            records = run(consume(broker.bootstrap, "payloads", len(answers)))
            until(lambda: events(served, "sent", "kafka") == len(answers), what="every event counted sent")
    logged = {record.key.decode(): json.loads(record.value) for record in records}
    assert set(logged) == set(answers)
    for request_id, answer in answers.items():
        event = logged[request_id]
        assert event["model"] == "iris" and event["protocol"] == "v2" and event["id"] == request_id
        if request_id == "req-bad":
            assert event["status"] == 400 and event["response"]["error"] == answer["error"]
        else:
            assert event["status"] == 200 and event["traceparent"] == TRACEPARENT
            assert event["request"]["inputs"][0]["data"] == ROWS[int(request_id.split("-")[1])].tolist()
            assert event["response"]["outputs"] == answer["outputs"]


# -- files: a local folder and S3, Parquet read back with pyarrow -----------------------------------


def read_back(table) -> dict[str, dict]:
    return {row["id"]: row for row in table.to_pylist()}


def check_rows(rows: dict[str, dict], answers: dict[str, dict]) -> None:
    assert set(rows) == set(answers)
    for request_id, answer in answers.items():
        row = rows[request_id]
        response = json.loads(row["response"])
        if request_id == "req-bad":
            assert row["status"] == 400 and response["error"] == answer["error"]
            continue
        assert row["status"] == 200 and row["traceparent"] == TRACEPARENT and row["ended"] >= row["started"]
        assert json.loads(row["request"])["inputs"][0]["data"] == ROWS[int(request_id.split("-")[1])].tolist()
        assert response["outputs"] == answer["outputs"]


def test_folder_sink_rolls_parquet_files_named_by_time(demo_model_dir, tmp_path):
    ds = pytest.importorskip("pyarrow.dataset")
    folder = tmp_path / "payloads"
    args = ["--log_payloads", "all", "--log_sink", str(folder), "--log_roll_seconds", "0.5"]
    with start_server(demo_model_dir, "iris", *args) as served:
        first = send_traffic(served, 6)
        # Rolled while serving: a file appears once its oldest event is half a second old.
        until(lambda: list(folder.rglob("*.parquet")), what="a rolled Parquet file")
        time.sleep(0.6)
        answers = {**first, **{k.replace("req-", "again-"): v for k, v in send_traffic(served, 0).items()}}
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    assert len(files) >= 2  # one rolled while serving, the rest written at shutdown
    assert all(f.startswith("date=20") and "/payloads-20" in f for f in files)
    assert not list(folder.rglob("*.partial"))  # half-written files are renamed into place or gone
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    rows = read_back(table)
    assert table.num_rows == 8  # 6 + the bad one, twice (its id is the same: the body's own)
    bad_rows = [r for r in table.to_pylist() if r["id"] == "req-bad"]
    assert len(bad_rows) == 2
    del answers["again-bad"]
    check_rows(rows, answers)


def test_s3_sink_writes_parquet_to_a_real_s3_server(demo_model_dir):
    pq = pytest.importorskip("pyarrow.parquet")
    import io

    with moto_s3("payload-logs") as (client, env):
        args = ["--log_payloads", "all", "--log_sink", "s3://payload-logs/iris", "--log_roll_seconds", "60"]
        with start_server(demo_model_dir, "iris", *args, env=env) as served:
            answers = send_traffic(served)
        # Held until shutdown (60 s roll): stopping the server writes them.
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="payload-logs", Prefix="iris/").get("Contents", [])]
        assert keys and all(k.startswith("iris/date=20") and k.endswith(".parquet") for k in keys)
        tables = [
            pq.read_table(io.BytesIO(client.get_object(Bucket="payload-logs", Key=k)["Body"].read())) for k in keys
        ]
    rows = {}
    for table in tables:
        rows.update(read_back(table))
    check_rows(rows, answers)


# -- a sink that is down -----------------------------------------------------------------------------


def test_a_down_sink_drops_and_counts_and_no_request_fails(demo_model_dir):
    dead = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    args = ["--log_payloads", "all", "--log_sink", dead, "--log_queue_size", "2"]
    with start_server(demo_model_dir, "iris", *args) as served:
        with httpx.Client(base_url=served.http_url, timeout=5) as client:
            for i in range(40):
                answer = client.post("/v2/models/iris/infer", json=v2_body(f"r{i}", ROWS[i % len(ROWS)]))
                assert answer.status_code == 200
                assert answer.elapsed.total_seconds() < 1  # not waiting for the sink's retries
            assert client.get("/v2/health/ready").status_code == 200
        until(
            lambda: total(scrape(served.http_url), "model_server_payload_log_retries_total", sink="http") >= 1,
            timeout=10,
            what="the down sink retried",
        )
        metrics = scrape(served.http_url)
        dropped = total(metrics, "model_server_payload_log_events_total", sink="http", outcome="dropped")
        assert dropped >= 40 - 2 - 3  # the queue holds 2, the retried batch at most 3
        assert total(metrics, "model_server_payload_log_events_total", sink="http", outcome="sent") == 0


def test_without_pyarrow_a_folder_gets_json_lines(demo_model_dir, tmp_path):
    """pyarrow hidden from the server (a package on PYTHONPATH that refuses to import: it is
    installed here) stands for an install without it."""
    hidden = tmp_path / "no-pyarrow" / "pyarrow"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('pyarrow hidden by the test')\n")
    folder = tmp_path / "payloads"
    args = ["--log_payloads", "all", "--log_sink", f"file://{folder}"]
    with start_server(demo_model_dir, "iris", *args, env={"PYTHONPATH": str(hidden.parent)}) as served:
        answers = send_traffic(served, 3)
    files = list(folder.rglob("payloads-*.jsonl"))
    assert files and not list(folder.rglob("*.parquet"))
    rows = {}
    for path in files:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            rows[row["id"]] = row
    check_rows(rows, answers)
