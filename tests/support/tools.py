"""Where the repository is, and the command-line tools the tests run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def project_tool(name: str, how: str = "`make tools` (scripts/install-tools.sh) puts it into .tools/bin") -> str:
    """A tool from .tools/bin or PATH; if absent, skips the test saying how to get it (see missing_tool)."""
    local = REPO / ".tools" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        missing_tool(f"{name} is not installed: {how}, or put {name} on PATH")
    return found


def missing_tool(reason: str) -> None:
    """Skip, naming what is missing and how to get it; with MODEL_SERVER_REQUIRE_TOOLS=1 (CI) fail instead."""
    if os.environ.get("MODEL_SERVER_REQUIRE_TOOLS") == "1":
        pytest.fail(f"MODEL_SERVER_REQUIRE_TOOLS=1 but {reason}")
    pytest.skip(reason)
