"""Every shell script of the project passes Debian's shellcheck."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.tools import project_tool

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(REPO.glob("scripts/*.sh")) + [p for p in [REPO / ".ci" / "run"] if p.exists()]


def test_the_project_has_shell_scripts():
    assert REPO / "scripts" / "build-image.sh" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck_clean(script):
    shellcheck = project_tool("shellcheck", how="`apt-get install shellcheck` (Debian's package; .ci/run installs it)")
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--external-sources", str(script)],
        capture_output=True,
        text=True,
        cwd=script.parent,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
