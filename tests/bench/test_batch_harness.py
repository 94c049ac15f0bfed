"""Smoke test of the batch benchmark harness (benchmarks/batch.py) on a few thousand rows: it runs
every measurement for real and writes sane JSON, markdown and PNG. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.mlserver_env import VENV_DIR
from benchmarks.servers import REPO_ROOT


def run_harness(out, *extra) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.batch", "--rows", "3000", "--rss-rows", "6000", "--out", str(out), *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )


def test_quick_run_measures_every_figure_and_writes_the_report(tmp_path):
    done = run_harness(tmp_path, "--skip-mlserver")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "batch.json").read_text())
    assert [m["model"] for m in report["models"]] == ["iris", "rf100"]
    for model in report["models"]:
        assert model["rows"] == 3000
        for key in ("raw_engine_s", "batch_scoring_s", "batch_wall_s", "naive_wall_s", "naive_work_s"):
            assert model[key] > 0, key
        assert model["batch_wall_s"] > model["batch_scoring_s"]  # the wall time includes start-up
        assert model["bit_identical_runs"] is True and model["bit_identical_workers"] is True
        assert "mlserver_infer_s" not in model
    assert report["rss"]["rss_mib"] > 50 and report["rss"]["big_rows"] == 6000
    markdown = (tmp_path / "batch.md").read_text()
    assert markdown == done.stdout
    assert len([line for line in markdown.splitlines() if line.startswith(("| iris |", "| rf100 |"))]) == 2
    assert (tmp_path / "batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mlserver_infer_is_measured_against_a_running_mlserver(tmp_path):
    if not (VENV_DIR / "installed-requirements.txt").exists():
        pytest.skip(f"MLServer's venv is not installed in {VENV_DIR} (make bench-batch installs it)")
    done = run_harness(tmp_path, "--models", "iris", "--rows-per-request", "500")
    assert done.returncode == 0, done.stderr[-3000:]
    (model,) = json.loads((tmp_path / "batch.json").read_text())["models"]
    assert model["mlserver_infer_s"] > 0
