"""project_tool: a missing tool skips the test, saying how to get it; MODEL_SERVER_REQUIRE_TOOLS=1 (CI) fails it."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.support.tools import REPO, project_tool

ABSENT = "model-server-no-such-tool"


def test_a_missing_tool_skips_naming_it_and_how_to_get_it(monkeypatch):
    monkeypatch.delenv("MODEL_SERVER_REQUIRE_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        project_tool(ABSENT)
    assert str(skipped.value) == (
        f"{ABSENT} is not installed: `make tools` (scripts/install-tools.sh) puts it into .tools/bin,"
        f" or put {ABSENT} on PATH"
    )
    with pytest.raises(pytest.skip.Exception, match=r"^shellcheck-x is not installed: `apt-get install shellcheck`"):
        project_tool("shellcheck-x", how="`apt-get install shellcheck`")


def test_with_require_tools_a_missing_tool_fails_the_test(monkeypatch):
    monkeypatch.setenv("MODEL_SERVER_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match=rf"^MODEL_SERVER_REQUIRE_TOOLS=1 but {ABSENT} is not installed: "):
        project_tool(ABSENT)


def test_a_present_tool_is_found_either_way(monkeypatch):
    for require in ("", "1"):
        monkeypatch.setenv("MODEL_SERVER_REQUIRE_TOOLS", require)
        assert project_tool("sh") == shutil.which("sh")


def test_ci_requires_the_tools():
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^export MODEL_SERVER_REQUIRE_TOOLS=1$.*^make test$", ci, flags=re.M | re.S), ci
