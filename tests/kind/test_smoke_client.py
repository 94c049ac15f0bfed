"""scripts/smoke_test.py against the real server running locally.

The kind workflow runs the same client through `kubectl port-forward`; here it
talks to `python -m model_server` on free local ports.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier

from tests.support.servers import free_port, start_server

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "scripts" / "smoke_test.py"


def smoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SMOKE), *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def served_v2(tmp_path_factory):
    from model_server.demo import write_demo_model

    model_dir = write_demo_model(tmp_path_factory.mktemp("iris-v2"), version=2)
    with start_server(model_dir, "iris") as served:
        yield served


class WeightedProxy(ThreadingHTTPServer):
    """Stands in for the cluster's ingress (Envoy Gateway / Kourier, which cannot
    run here): every FIFTH request goes to the second backend, the rest to the
    first, so a 20% canary split is exact. Records the Host headers it saw."""

    def __init__(self, backends: list[str]):
        self.pattern = itertools.cycle([backends[0]] * 4 + [backends[1]])
        self.hosts: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ProxyHandler(BaseHTTPRequestHandler):
    server: WeightedProxy

    def do_POST(self):
        with self.server.lock:
            backend = next(self.server.pattern)
            self.server.hosts.append(self.headers["Host"])
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        response = httpx.post(backend + self.path, content=body, headers={"Content-Type": "application/json"})
        self.send_response(response.status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(response.content)))
        self.end_headers()
        self.wfile.write(response.content)

    def log_message(self, *args):
        pass


@pytest.fixture
def canary_proxy(served_model, served_v2):
    proxy = WeightedProxy([served_model.http_url, served_v2.http_url])
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield proxy
    proxy.shutdown()
    proxy.server_close()


def test_check_passes_against_the_local_server(served_model):
    result = smoke("check", "--url", served_model.http_url, "--grpc", served_model.grpc_target, "--model", "iris")
    assert result.returncode == 0, result.stderr
    for line in (
        "ok    V1 predict",
        "ok    V2 health, model ready and metadata",
        "ok    V2 REST infer (model_version '1')",
        "ok    V2 gRPC infer",
    ):
        assert line in result.stdout
    assert f"smoke test passed against {served_model.http_url} and {served_model.grpc_target}" in result.stdout


def test_check_reports_the_version_2_model(served_v2):
    result = smoke("check", "--url", served_v2.http_url, "--grpc", served_v2.grpc_target)
    assert result.returncode == 0, result.stderr
    assert "V2 REST infer (model_version '2')" in result.stdout
    assert "V2 gRPC infer" in result.stdout and "(model_version '2')" in result.stdout


def test_wrong_model_name_fails_with_a_clear_message(served_model):
    result = smoke("check", "--url", served_model.http_url, "--model", "no-such-model")
    assert result.returncode == 1
    assert "smoke test FAILED" in result.stderr
    assert "/v1/models/no-such-model:predict returned HTTP 404" in result.stderr


def test_closed_port_fails_with_a_clear_message():
    url = f"http://127.0.0.1:{free_port()}"
    result = smoke("check", "--url", url, "--timeout", "5")
    assert result.returncode == 1
    assert f"smoke test FAILED: cannot reach {url}/v1/models/iris:predict" in result.stderr


def test_closed_grpc_port_fails_after_the_rest_checks(served_model):
    target = f"127.0.0.1:{free_port()}"
    result = smoke("check", "--url", served_model.http_url, "--grpc", target, "--timeout", "5")
    assert result.returncode == 1
    assert "ok    V2 REST infer" in result.stdout
    assert f"smoke test FAILED: gRPC {target}" in result.stderr


def test_wrong_predictions_fail_the_check(tmp_path):
    # A real model that answers "virginica" for every flower.
    features, labels = load_iris(return_X_y=True)
    joblib.dump(DummyClassifier(strategy="constant", constant=2).fit(features, labels), tmp_path / "model.joblib")
    with start_server(tmp_path, "iris") as served:
        result = smoke("check", "--url", served.http_url)
    assert result.returncode == 1
    assert "V1 predict: predicted classes [2, 2, 2], expected [0, 1, 2]" in result.stderr


def test_split_counts_responses_per_model_version(served_model):
    result = smoke("split", "--url", served_model.http_url, "--requests", "20", "--expect", "1=100", "--tolerance", "0")
    assert result.returncode == 0, result.stderr
    assert "model_version 1: 20/20 (100.0%)" in result.stdout
    assert "split ok: model_version 1 got 100.0%" in result.stdout


def test_split_outside_the_tolerance_exits_3(served_model):
    result = smoke("split", "--url", served_model.http_url, "--requests", "10", "--expect", "2=20")
    assert result.returncode == 3
    assert "model_version 1: 10/10 (100.0%)" in result.stdout
    assert "split mismatch: model_version 2 got 0.0% of requests, expected 20% ± 10" in result.stderr


def test_split_measures_a_canary_behind_an_ingress(canary_proxy):
    result = smoke(
        "split",
        "--url",
        canary_proxy.url,
        "--host",
        "iris-ns.example.com",
        "--requests",
        "200",
        "--expect",
        "2=20",
        "--tolerance",
        "0",
    )
    assert result.returncode == 0, result.stderr
    assert "model_version 1: 160/200 (80.0%)" in result.stdout
    assert "model_version 2: 40/200 (20.0%)" in result.stdout
    # The Host header is what routes to the InferenceService behind a real gateway.
    assert set(canary_proxy.hosts) == {"iris-ns.example.com"} and len(canary_proxy.hosts) == 200


def test_split_fails_when_requests_fail(served_model):
    result = smoke("split", "--url", served_model.http_url, "--model", "other", "--requests", "5")
    assert result.returncode == 1
    assert "/v2/models/other/infer returned HTTP 404" in result.stderr


def test_load_sends_requests_for_a_bounded_time(served_model):
    result = smoke("load", "--url", served_model.http_url, "--seconds", "1", "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    assert ", 0 failed in 1s with 2 workers" in result.stdout
    assert int(result.stdout.split("load: ")[1].split()[0]) > 0


def test_load_fails_when_nothing_answers():
    url = f"http://127.0.0.1:{free_port()}"
    result = smoke("load", "--url", url, "--seconds", "1", "--concurrency", "1", "--timeout", "1")
    assert result.returncode == 1
    assert f"smoke test FAILED: load: no request to {url} succeeded" in result.stderr


def test_malformed_expect_is_a_usage_error():
    result = smoke("split", "--url", "http://127.0.0.1:1", "--expect", "twenty")
    assert result.returncode == 2
    assert "expected VERSION=PERCENT" in result.stderr
