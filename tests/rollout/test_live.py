"""The rollout for real: validation and analysis against real servers and a real Prometheus.

One stable server (v1) and three new versions, each in its own server process: good (v2), flaky
(v3: a 500 for the one request in five that carries an outlier) and slow (v4: 3x the stable
latency). The same traffic reaches all four; Debian's Prometheus scrapes them every second.
`python -m model_server.rollout --dry_run` then runs step 1 and 3 for real (and prints step 2 and
4's helm commands): the good version is promoted, the bad ones rolled back, each for its reason.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from model_server.rollout.__main__ import run
from model_server.rollout.settings import RolloutSettings
from tests.support.prometheus import prometheus_binary, start_prometheus
from tests.support.servers import SUPPORT_ENV, free_port, start_server
from tests.support.tools import REPO

from .models import OUTLIER, write_holdout, write_versions

MODEL = "scorer"
# Short but judged: three steps of 2 s over 4 s windows (four scrapes each).
TIMING = ["--duration", "6", "--interval", "2", "--window", "4", "--min_requests", "10"]
THRESHOLDS = ["--max_error_rate", "0.05", "--max_latency_ratio", "1.5"]


class Load:
    """Sequential V1 requests at every server, one in five carrying an outlier row, until stopped."""

    def __init__(self, urls: list[str]):
        self.urls = urls
        self.stop = threading.Event()
        self.codes: dict[str, dict[int, int]] = {url: {} for url in urls}
        self.threads = [threading.Thread(target=self._drive, args=(url,), daemon=True) for url in urls]

    def _drive(self, url: str) -> None:
        rows = [[0.5, -0.3, 1.2, 0.1]] * 4 + [OUTLIER]
        deadline = time.monotonic() + 300  # bounded, whatever happens to the test
        with httpx.Client(base_url=url, timeout=10) as client:
            n = 0
            while not self.stop.is_set() and time.monotonic() < deadline:
                response = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [rows[n % 5]]})
                self.codes[url][response.status_code] = self.codes[url].get(response.status_code, 0) + 1
                n += 1

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The four servers under load and Prometheus scraping them, until every version has data."""
    prometheus_binary()  # skip (or fail under MODEL_SERVER_REQUIRE_TOOLS=1) before starting anything
    root = tmp_path_factory.mktemp("rollout")
    versions = write_versions(root / "models")
    with ExitStack() as stack:
        servers = stack.enter_context(start_servers(versions))
        prometheus = stack.enter_context(
            start_prometheus({role: served.http_url for role, served in servers.items()}, root)
        )
        load = stack.enter_context(Load([served.http_url for served in servers.values()]))
        _wait_for_data(prometheus)
        yield {"root": root, "versions": versions, "prometheus": prometheus, "load": load, "servers": servers}


@contextmanager
def start_servers(versions: dict[str, Path]):
    """Every version's server, started at once (each takes seconds to import and load)."""
    managers = {role: start_server(d, MODEL, "--enable_grpc=false", env=SUPPORT_ENV) for role, d in versions.items()}
    with ExitStack() as stack, ThreadPoolExecutor(len(managers)) as pool:
        started = {role: pool.submit(manager.__enter__) for role, manager in managers.items()}
        servers = {}
        for role, future in started.items():
            if future.exception() is None:
                servers[role] = future.result()
                stack.push(managers[role].__exit__)
        for future in started.values():
            future.result()  # the first failure to start, with its log
        yield servers


def _wait_for_data(prometheus, timeout: float = 40) -> None:
    """Until a 4 s window holds requests of every version (the first steps then have data)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = prometheus.query(f'sum by (version) (increase(model_server_requests_total{{model="{MODEL}"}}[4s]))')
        if len([r for r in result if float(r["value"][1]) >= 10]) == 4:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has no data of every version after {timeout}s: {result}")


def rollout(cluster, role: str, *args: str) -> subprocess.Popen:
    report = cluster["root"] / f"{role}-report.json"
    command = [
        sys.executable, "-m", "model_server.rollout",
        "--model_dir", str(cluster["versions"][role]),
        "--stable_model_dir", str(cluster["versions"]["stable"]),
        "--model_name", MODEL,
        "--holdout", str(write_holdout(cluster["root"] / "holdout.csv")),
        "--storage_uri", f"s3://models/{MODEL}/{role}",
        "--namespace", "models",
        "--prometheus_url", cluster["prometheus"].url,
        *TIMING, *THRESHOLDS, "--dry_run", "--report", str(report), *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, **SUPPORT_ENV},
    )


@pytest.fixture(scope="module")
def decisions(cluster):
    """The three rollouts against the same Prometheus: role -> (exit code, output, report). One after
    the other: a rollout loading its models costs CPU that would show in the others' latencies."""
    results = {}
    for role in ("good", "flaky", "slow"):
        process = rollout(cluster, role)
        output, _ = process.communicate(timeout=120)
        report = json.loads((cluster["root"] / f"{role}-report.json").read_text())
        results[role] = (process.returncode, output, report)
    return results


def helm_steps(report: dict) -> list[str]:
    return [command["step"] for command in report["commands"]]


def test_the_good_version_is_promoted_after_every_step_held(decisions):
    code, output, report = decisions["good"]
    assert code == 0, output
    assert report["decision"]["result"] == "promoted"
    assert [c["status"] for c in report["validation"]] == ["PASS"] * 4, output
    steps = report["analysis"]["steps"]
    assert [s["verdict"] for s in steps] == ["pass"] * 3, output
    for step in steps:
        assert step["canary"]["requests"] >= 10 and step["stable"]["requests"] >= 10
        assert step["canary"]["error_rate"] == step["stable"]["error_rate"] == 0
        assert 0.67 < step["latency_ratio"] < 1.5
    assert helm_steps(report) == ["canary", "promote"]
    assert all(not command["ran"] for command in report["commands"])  # --dry_run
    assert "+ helm upgrade scorer charts/model-server --namespace models --reuse-values" in output
    assert "==> PROMOTED: version 2: 3 of 3 steps judged over 6 s, every one held (exit 0)" in output


def test_a_version_failing_one_request_in_five_is_rolled_back_for_its_errors(decisions):
    code, output, report = decisions["flaky"]
    assert code == 1, output
    assert report["decision"]["result"] == "rolled back"
    # The holdout has no outlier: offline, the flaky version looks as good as the stable one.
    assert [c["status"] for c in report["validation"]] == ["PASS"] * 4, output
    (step,) = report["analysis"]["steps"]  # fails fast, at the first step
    assert step["verdict"] == "fail"
    assert 0.12 < step["canary"]["error_rate"] < 0.28 and step["stable"]["error_rate"] == 0, step
    assert [r.split(":")[0] for r in step["reasons"]] == [
        f"error rate {step['canary']['error_rate']:.1%} vs stable 0.0%"
    ]
    assert "over --max_error_rate 5.0%" in report["decision"]["reason"]
    assert helm_steps(report) == ["canary", "rollback"]


def test_a_three_times_slower_version_is_rolled_back_for_its_latency(decisions):
    code, output, report = decisions["slow"]
    assert code == 1, output
    assert [c["status"] for c in report["validation"]] == ["PASS"] * 4, output
    (step,) = report["analysis"]["steps"]
    assert step["canary"]["error_rate"] == 0
    # 180 ms against 60 ms per estimator call, read off the histogram's buckets by histogram_quantile.
    assert step["latency_ratio"] > 1.5, step
    assert len(step["reasons"]) == 1 and step["reasons"][0].startswith("p99 latency"), step
    assert "over --max_latency_ratio 1.5" in report["decision"]["reason"]
    assert helm_steps(report) == ["canary", "rollback"]


def test_the_servers_really_answered_the_traffic_the_analysis_saw(cluster, decisions):
    codes = {role: cluster["load"].codes[served.http_url] for role, served in cluster["servers"].items()}
    assert set(codes["stable"]) == set(codes["good"]) == set(codes["slow"]) == {200}
    assert set(codes["flaky"]) == {200, 500}
    assert "simulated model failure on an outlier" in cluster["servers"]["flaky"].log()


def rollout_in_process(cluster, *args: str) -> tuple[int, str, dict]:
    """The same rollout of the good version, in this process (its imports are paid already)."""
    report = cluster["root"] / "in-process-report.json"
    argv = [
        "--model_dir", str(cluster["versions"]["good"]), "--stable_model_dir", str(cluster["versions"]["stable"]),
        "--model_name", MODEL, "--storage_uri", "s3://models/good", "--prometheus_url", cluster["prometheus"].url,
        *TIMING, "--dry_run", "--report", str(report), *args,
    ]  # fmt: skip
    out = io.StringIO()
    code = run(RolloutSettings.from_args(argv, environ={}), out)
    return code, out.getvalue(), json.loads(report.read_text())


def test_a_query_prometheus_refuses_rolls_the_canary_back_and_exits_4(cluster):
    code, output, report = rollout_in_process(cluster, "--selector", 'model=~"(', "--duration", "2")
    assert code == 4, output
    assert "Prometheus refused" in output and "parse error" in output
    assert helm_steps(report) == ["canary", "rollback"]
    assert report["decision"]["reason"].endswith("; rolled back")


def test_an_unreachable_prometheus_rolls_the_canary_back_and_exits_4(cluster):
    url = f"http://127.0.0.1:{free_port()}"
    code, output, report = rollout_in_process(cluster, "--prometheus_url", url, "--duration", "2")
    assert code == 4, output
    assert f"cannot reach Prometheus at {url}" in output
    assert helm_steps(report) == ["canary", "rollback"]


def test_the_servers_series_are_told_apart_by_version(cluster):
    result = cluster["prometheus"].query(f'count by (version, job) (model_server_requests_total{{model="{MODEL}"}})')
    pairs = {(r["metric"]["job"], r["metric"]["version"]) for r in result}
    assert pairs == {("stable", "1"), ("good", "2"), ("flaky", "3"), ("slow", "4")}
