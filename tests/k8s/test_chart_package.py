"""`helm package` of the chart: every file of the chart, nothing left over from VCS, editors or tests."""

from __future__ import annotations

import shutil
import subprocess
import tarfile

import pytest

from .rendering import CHART, REPO, run

# What a working copy accumulates next to the chart's files; .helmignore must keep each out.
LEFTOVERS = [
    ".git/HEAD",
    ".gitignore",
    ".idea/workspace.xml",
    ".vscode/settings.json",
    ".DS_Store",
    "values.yaml.swp",
    "values.yaml~",
    "templates/_names.tpl.orig",
    "files/__pycache__/smoke_request.cpython-311.pyc",
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/CACHEDIR.TAG",
    "model-server-0.0.1.tgz",
]


def chart_files() -> set[str]:
    """The chart's files as git tracks them (what a release should contain)."""
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout: the expected file list is `git ls-files charts/model-server`")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", str(CHART.relative_to(REPO))],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=60,
    ).stdout
    return {path.removeprefix("charts/") for path in listed.split("\0") if path}


@pytest.fixture(scope="module")
def packaged(helm, tmp_path_factory):
    """The archive `helm package` makes of the chart copied with leftovers added."""
    work = tmp_path_factory.mktemp("package")
    chart = work / CHART.name
    shutil.copytree(CHART, chart)
    for leftover in LEFTOVERS:
        (chart / leftover).parent.mkdir(parents=True, exist_ok=True)
        (chart / leftover).write_text("leftover\n")
    run([helm, "package", str(chart), "--destination", str(work / "out")])
    (archive,) = (work / "out").glob("*.tgz")
    return archive


def test_package_holds_exactly_the_chart_files(packaged):
    with tarfile.open(packaged) as tar:
        members = {m.name for m in tar.getmembers() if m.isfile()}
    assert sorted(members - chart_files()) == []  # no leftover
    assert sorted(chart_files() - members) == []  # nothing of the chart ignored
    assert {f"{CHART.name}/ci/scheduling-values.yaml", f"{CHART.name}/files/smoke_request.py"} <= members


def test_packaged_chart_renders_like_the_source(helm, packaged):
    # .Files (dashboard JSON, helm test client) must survive packaging.
    source = run([helm, "template", "demo", str(CHART), "-n", "models"]).stdout
    assert run([helm, "template", "demo", str(packaged), "-n", "models"]).stdout == source
