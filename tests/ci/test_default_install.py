"""The package as `pip install` gives it predicts ensembles as the image does: ONNX Runtime and the
converter come with the default install, not with an extra. pip resolves the project from PyPI
for real (--dry-run: nothing is installed); the engine choice itself is tests/unit/test_engines.py,
and the image, built from the default dependencies alone, serves a forest through ONNX Runtime
(tests/container/test_container_serving.py)."""

import json
import subprocess
import sys

import pytest

from tests.support.tools import REPO

FAST_PATH = {"onnxruntime", "skl2onnx"}


def test_pip_resolves_onnx_runtime_into_a_plain_install(tmp_path):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 and "NewConnectionError" in result.stderr + result.stdout:
        pytest.skip(f"PyPI is not reachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    resolved = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
    assert resolved >= FAST_PATH and "sklearn-model-server" in resolved
