"""Drift in the server, end to end: a profile written by ``python -m model_server.profile`` from
training rows, the server started over it, traffic drawn from the training distribution (every
feature's PSI < 0.1), then the same traffic with one feature's mean moved by one standard
deviation (that feature's PSI >= 0.25 within one window, the others still low), read from
/metrics with Prometheus' own parser."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import httpx

from model_server.demo import FEATURES
from tests.batch.support import iris_frame, write
from tests.support.metrics import scrape, total
from tests.support.prometheus import start_prometheus
from tests.support.servers import start_server
from tests.support.tools import REPO

WINDOW = 1000
STD = [0.8, 0.4, 1.7, 0.7]  # iris_frame's


def send(served, frame, batch: int = 100) -> None:
    values = frame[FEATURES].to_numpy()
    with httpx.Client(base_url=served.http_url, timeout=30) as client:
        for start in range(0, len(values), batch):
            rows = values[start : start + batch]
            body = {
                "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]
            }
            assert client.post("/v2/models/iris/infer", json=body).status_code == 200


def drift_of(served) -> dict[str, float]:
    metrics = scrape(served.http_url)
    return {f: total(metrics, "model_server_feature_drift", feature=f, method="psi") for f in FEATURES}


def test_psi_stays_low_in_distribution_and_rises_for_the_shifted_feature(demo_model_dir, tmp_path):
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "model")
    train = write(iris_frame(20_000, seed=0), tmp_path / "train.parquet")
    done = subprocess.run(
        [sys.executable, "-m", "model_server.profile", "--model_dir", str(model_dir), "--data", str(train)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with start_server(model_dir, "iris", f"--drift_window_rows={WINDOW}") as served:
        send(served, iris_frame(WINDOW, seed=1))
        steady = drift_of(served)
        assert all(value < 0.1 for value in steady.values()), steady
        metrics = scrape(served.http_url)
        assert total(metrics, "model_server_feature_missing_ratio", feature=FEATURES[0]) == 0
        assert total(metrics, "model_server_prediction_drift", method="psi") < 0.1
        shifted = iris_frame(WINDOW, seed=2)
        shifted[FEATURES[0]] += STD[0]
        send(served, shifted)
        moved = drift_of(served)
        assert moved[FEATURES[0]] >= 0.25, moved
        assert all(moved[f] < 0.1 for f in FEATURES[1:]), moved
        assert total(scrape(served.http_url), "model_server_feature_out_of_range_total", feature=FEATURES[0]) > 0
        # The real Prometheus scraping the server sees the same, through the alert's own query.
        with start_prometheus({"server": served.http_url}, tmp_path) as prometheus:
            query = 'max by (model, version, feature) (model_server_feature_drift{model="iris", method="psi"}) >= 0.25'
            deadline = time.monotonic() + 30
            while not (found := prometheus.query(query)) and time.monotonic() < deadline:
                time.sleep(0.5)
        assert [series["metric"]["feature"] for series in found] == [FEATURES[0]]


def test_a_profile_that_is_not_the_pinned_one_stops_the_load(demo_model_dir, tmp_path):
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "model")
    train = write(iris_frame(500), tmp_path / "train.csv")
    subprocess.run(
        [sys.executable, "-m", "model_server.profile", "--model_dir", str(model_dir), "--data", str(train)],
        check=True,
        capture_output=True,
        cwd=REPO,
        timeout=120,
    )
    (model_dir / "profile.json").write_text((model_dir / "profile.json").read_text().replace('"rows"', '"rows" ', 1))
    result = subprocess.run(
        [sys.executable, "-m", "model_server", f"--model_dir={model_dir}", "--http_port=0", "--grpc_port=0"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode != 0 and "profile_sha256" in result.stderr and "Traceback" not in result.stderr
