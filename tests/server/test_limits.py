"""What one client can cost the server: rows per request, the size and pace of a request head,
and a large body not stalling everyone else. (The memory these bounds keep is measured in
benchmarks/soak.py, not asserted here.)"""

from __future__ import annotations

import socket
import threading
import time

import grpc
import httpx
import numpy as np
import orjson
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.support.servers import start_server

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="module")
def bounded(demo_model_dir):
    args = ("--max_request_rows=100", "--max_header_bytes=8192", "--header_timeout_seconds=1")
    with start_server(demo_model_dir, "iris", *args) as served:
        yield served


def http_address(served) -> tuple[str, int]:
    host, port = served.http_url.removeprefix("http://").split(":")
    return host, int(port)


def read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def test_rows_per_request_are_bounded_on_every_protocol(bounded):
    v1 = httpx.post(f"{bounded.http_url}/v1/models/iris:predict", json={"instances": [ROW] * 101})
    assert v1.status_code == 413
    assert v1.json()["error"] == "the request has 101 rows; this server takes at most 100 (--max_request_rows)"
    tensor = {"name": "x", "datatype": "FP64", "shape": [101, 4], "data": ROW * 101}
    v2 = httpx.post(f"{bounded.http_url}/v2/models/iris/infer", json={"inputs": [tensor]})
    assert v2.status_code == 413 and "101 rows" in v2.json()["error"]
    contents = pb.InferTensorContents(fp64_contents=ROW * 101)
    request = pb.ModelInferRequest(
        model_name="iris",
        inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[101, 4], contents=contents)],
    )
    with grpc.insecure_channel(bounded.grpc_target) as channel, pytest.raises(grpc.RpcError) as error:
        GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "101 rows" in error.value.details()
    assert httpx.post(f"{bounded.http_url}/v1/models/iris:predict", json={"instances": [ROW] * 100}).status_code == 200


def test_an_oversized_request_head_gets_431_and_the_connection_closes(bounded):
    with socket.create_connection(http_address(bounded)) as sock:
        sock.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\nhost: x\r\nx-big: ")
        sent = 0
        with pytest.raises(OSError):  # the server stops reading and closes: the sender sees it
            for _ in range(2000):  # up to 16 MB of a header that never ends
                sock.sendall(b"a" * 8192)
                sent += 8192
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 ") and b"request head exceeds 8192 bytes" in answer
    assert sent < 4 * 1024 * 1024
    # Headers within the bound still work.
    ok = httpx.post(
        f"{bounded.http_url}/v1/models/iris:predict", json={"instances": [ROW]}, headers={"x-pad": "p" * 4000}
    )
    assert ok.status_code == 200


@pytest.mark.parametrize("dribble", [False, True], ids=["silent", "dribbling"])
def test_silent_and_slow_connections_are_closed(bounded, dribble):
    with socket.create_connection(http_address(bounded)) as sock:
        started = time.monotonic()
        if dribble:
            sock.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\n")
            for _ in range(10):  # a header byte every 0.2 s: never a whole head
                time.sleep(0.2)
                try:
                    sock.sendall(b"x")
                except OSError:
                    break
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") and b"no complete request head within 1 seconds" in answer
    assert time.monotonic() - started < 5


def test_idle_kept_alive_connection_is_not_cut_by_the_head_timeout(bounded):
    with httpx.Client() as client:
        url = f"{bounded.http_url}/v1/models/iris:predict"
        assert client.post(url, json={"instances": [ROW]}).status_code == 200
        time.sleep(1.5)  # idle longer than the head timeout: keep-alive's own timeout applies
        assert client.post(url, json={"instances": [ROW]}).status_code == 200


def test_a_large_body_does_not_stall_other_clients(demo_model_dir):
    rows = np.random.default_rng(0).normal(size=(400_000, 4)).round(4).tolist()
    body = orjson.dumps({"instances": rows})  # encoded beforehand: the test's own GIL must not be the stall
    with start_server(demo_model_dir, "iris", "--max_request_rows=1000000") as served:
        url = f"{served.http_url}/v1/models/iris:predict"
        big = {}

        def send_big():
            started = time.monotonic()
            response = httpx.post(url, content=body, timeout=60)
            big.update(started=started, done=time.monotonic(), status=response.status_code)

        thread = threading.Thread(target=send_big)
        thread.start()
        waits = []
        with httpx.Client() as client:
            while thread.is_alive():
                started = time.monotonic()
                assert client.post(url, json={"instances": [ROW]}).status_code == 200
                waits.append(time.monotonic() - started)
        thread.join()
    assert big["status"] == 200 and len(waits) >= 3
    # Parsed on the event loop, the large body would hold every small request for the whole parse.
    assert max(waits) < 0.3 * (big["done"] - big["started"]), (max(waits), big["done"] - big["started"])
