"""Where the repository is, and the command-line tools the tests run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def project_tool(name: str) -> str:
    """A tool from .tools/bin (scripts/install-tools.sh) or PATH; skips the test, naming it, if absent."""
    local = REPO / ".tools" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (scripts/install-tools.sh puts it in .tools/bin)")
    return found
