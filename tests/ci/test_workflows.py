"""The GitHub Actions workflows cannot run here, so they are checked here.

- actionlint (with shellcheck over every `run:` script) on every workflow, and GitHub's own
  schemas (check-jsonschema's vendored copies) for the workflows and dependabot.yml;
- every command a workflow runs is a Makefile target, a script of this repository that exists,
  a module of the package, or a tool an earlier step of its job installs; apt packages are those
  .ci/run installs; helm comes from scripts/install-tools.sh (its pinned version), Python is the
  version the image is built on.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.tools import REPO, missing_tool

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
# Tools a workflow step may run because an earlier `uses:` step of its job installs them.
INSTALLED_BY = {"cosign": "sigstore/cosign-installer"}


def venv_tool(name: str) -> str:
    tool = BIN / name
    if not tool.exists():
        missing_tool(f"{name} is not installed: `pip install -e '.[test]'` (the test extra) installs it")
    return str(tool)


def load(path: Path) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    workflow = yaml.safe_load(path.read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def test_the_workflows_the_issue_asks_for_exist():
    assert [p.name for p in WORKFLOWS] == ["ci.yml", "model-release.yml", "release.yml"]
    assert load(REPO / ".github/workflows/model-release.yml")["on"]["workflow_dispatch"]["inputs"]["model_uri"][
        "required"
    ]
    assert load(REPO / ".github/workflows/release.yml")["on"] == {"push": {"tags": ["v*.*.*"]}}
    assert set(load(REPO / ".github/workflows/ci.yml")["on"]) == {"pull_request", "push"}


# ------------------------------------------------------------------------------ linters --


def actionlint(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    if not shutil.which("shellcheck"):
        missing_tool("shellcheck is not installed: `apt-get install shellcheck` (actionlint checks run: with it)")
    return subprocess.run([venv_tool("actionlint"), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_actionlint_passes_every_workflow():
    result = actionlint(*map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  build:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with: {fetch-dpth: 1}\n"
        '      - run: echo "${{ github.nope }}" && cd $UNQUOTED\n'
    )
    result = actionlint(str(broken), cwd=tmp_path)
    assert result.returncode == 1
    assert "fetch-dpth" in result.stdout  # an input the action does not have
    assert "SC2086" in result.stdout  # shellcheck, through actionlint, on the run: script


@pytest.mark.parametrize(
    ("schema", "files"),
    [("vendor.github-workflows", WORKFLOWS), ("vendor.dependabot", [REPO / ".github" / "dependabot.yml"])],
)
def test_github_s_schemas_accept_the_files(schema, files):
    result = subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_updates_pip_actions_and_docker():
    config = yaml.safe_load((REPO / ".github" / "dependabot.yml").read_text())
    assert {(u["package-ecosystem"], u["directory"]) for u in config["updates"]} == {
        ("pip", "/"), ("github-actions", "/"), ("docker", "/"),
    }  # fmt: skip


# --------------------------------------------------------- every command is one of ours --


def make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"(?m)^([A-Za-z][\w.-]*):(?!=)", text))


def ci_run_apt_packages() -> set[str]:
    line = next(line for line in (REPO / ".ci" / "run").read_text().splitlines() if "apt-get install" in line)
    return {word for word in line.split() if not word.startswith("-")} - {"apt-get", "install"}


def install_tools_versions() -> dict[str, str]:
    text = (REPO / "scripts" / "install-tools.sh").read_text()
    return dict(re.findall(r'(?m)^(helm|checkov)_version="([^"]+)"$', text))


def commands(script: str) -> list[list[str]]:
    """The simple commands of a run: script (joined continuation lines, split on && ; |)."""
    script = re.sub(r"\\\n\s*", " ", script)
    found = []
    for line in script.splitlines():
        line = line.split(" #")[0].strip()
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"&&|\|\||;|\|", line):
            words = shlex.split(part.split(">")[0], posix=True)
            if words:
                found.append(words)
    return found


def steps() -> list[tuple[str, str, list[dict], dict]]:
    """(workflow, job, the job's earlier steps, step) for every step of every workflow."""
    found = []
    for path in WORKFLOWS:
        for job_name, job in load(path)["jobs"].items():
            for i, step in enumerate(job["steps"]):
                found.append((path.name, job_name, job["steps"][:i], step))
    return found


def problem(words: list[str], earlier: list[dict]) -> str | None:
    """Why this command is not one the repository provides (None if it is)."""
    if words[0] == "sudo":
        words = words[1:]
    program, args = words[0], words[1:]
    if program == "make":
        unknown = [a for a in args if "=" not in a and not a.startswith("-") and a not in make_targets()]
        return f"make targets {unknown} are not in the Makefile" if unknown else None
    if program in ("bash", "python3", ".venv/bin/python") and args:
        if args[0] == "-m":
            module = REPO.joinpath(*args[1].split("."))
            exists = module.with_suffix(".py").exists() or (module / "__main__.py").exists()
            return None if exists and args[1].startswith("model_server") else f"no module {args[1]} of ours"
        return None if (REPO / args[0]).is_file() and args[0].startswith("scripts/") else f"no script {args[0]}"
    if program == "apt-get":
        if args[:1] == ["update"]:
            return None
        packages = {a for a in args[1:] if not a.startswith("-")}
        extra = packages - ci_run_apt_packages()
        return f"apt packages {sorted(extra)} are not the ones .ci/run installs" if extra else None
    if program in ("mkdir",):
        return None
    action = INSTALLED_BY.get(program)
    if action and any(step.get("uses", "").startswith(f"{action}@") for step in earlier):
        return None
    return f"{program} is neither a Makefile target nor a script of this repository"


def test_every_command_a_workflow_runs_is_a_target_a_script_or_an_installed_tool():
    problems = []
    for workflow, job, earlier, step in steps():
        for words in commands(step.get("run", "")):
            reason = problem(words, earlier)
            if reason:
                problems.append(f"{workflow} {job}: {' '.join(words)}: {reason}")
    assert problems == []


def test_the_command_check_would_see_a_stranger():
    assert problem(["make", "no-such-target"], []) == "make targets ['no-such-target'] are not in the Makefile"
    assert problem(["bash", "scripts/absent.sh"], []) == "no script scripts/absent.sh"
    assert problem(["curl", "-sSL", "https://get.helm.sh"], []).startswith("curl is neither")
    assert problem(["cosign", "sign"], []).startswith("cosign is neither")  # no cosign-installer before it
    assert problem(["sudo", "apt-get", "install", "-y", "golang"], []) == (
        "apt packages ['golang'] are not the ones .ci/run installs"
    )
    assert commands("a --x \\\n  --y && b | c > out # note\n# comment\n") == [["a", "--x", "--y"], ["b"], ["c"]]


def test_tools_come_from_install_tools_at_its_versions():
    versions = install_tools_versions()
    assert versions["helm"].startswith("v")
    for workflow, job, _, step in steps():
        uses = step.get("uses", "")
        # helm, kubectl and checkov come from `make tools` alone, never from a setup action with its own version.
        assert not re.match(r"azure/setup-(helm|kubectl)|.*checkov", uses), f"{workflow} {job}: {uses}"
        for tool, version in re.findall(r"\b(helm|checkov)[ _-]?(?:version)?[=: ]+v?(\d+\.\d+\.\d+)", str(step)):
            assert f"v{version}".removeprefix("vv") in (versions[tool], f"v{versions[tool]}"), (workflow, step)
    chart_jobs = [(w, j) for w, j, _, s in steps() if "helm" in s.get("run", "") or "package-chart" in s.get("run", "")]
    for workflow, job in chart_jobs:
        job_runs = " ".join(s.get("run", "") for w, j, _, s in steps() if (w, j) == (workflow, job))
        assert "make tools" in job_runs or "make venv tools" in job_runs, (
            f"{workflow} {job} uses helm without make tools"
        )


def test_python_is_the_version_the_image_and_the_package_use():
    dockerfile = (REPO / "Dockerfile").read_text()
    image_python = re.search(r"ARG BASE_IMAGE=python:(\d+\.\d+)", dockerfile).group(1)
    assert re.search(rf'requires-python = ">={re.escape(image_python)}"', (REPO / "pyproject.toml").read_text())
    versions = {
        str(s["with"]["python-version"])
        for _, _, _, s in steps()
        if s.get("uses", "").startswith("actions/setup-python")
    }
    assert versions == {image_python}


def test_actions_are_pinned_to_a_release():
    for workflow, job, _, step in steps():
        uses = step.get("uses")
        if uses:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", uses), f"{workflow} {job}: {uses}"


def test_ci_runs_the_lint_the_tests_the_image_and_the_chart():
    jobs = load(REPO / ".github/workflows/ci.yml")["jobs"]
    runs = {name: [w for s in job["steps"] for w in commands(s.get("run", ""))] for name, job in jobs.items()}
    assert ["make", "lint-all"] in runs["lint"]
    assert ["make", "test"] in runs["test"]
    assert runs["image"][-2:] == [
        ["make", "image", "IMAGE_TAG=model-server:ci"],
        ["make", "smoke-image", "IMAGE_TAG=model-server:ci"],
    ]
    assert ["make", "check-manifests"] in runs["chart"]
    assert jobs["test"]["env"]["MODEL_SERVER_REQUIRE_CONTAINER"] == "1"


def test_the_release_builds_both_architectures_with_sbom_provenance_and_a_signature():
    steps_ = load(REPO / ".github/workflows/release.yml")["jobs"]["release"]["steps"]
    (build,) = [s for s in steps_ if s.get("uses", "").startswith("docker/build-push-action@")]
    assert build["with"]["platforms"] == "linux/amd64,linux/arm64"
    assert build["with"]["sbom"] is True and build["with"]["provenance"] == "mode=max"
    assert any("cosign sign --yes" in s.get("run", "") and "steps.build.outputs.digest" in str(s) for s in steps_)
    assert any("package-chart.sh" in s.get("run", "") and "--push" in s.get("run", "") for s in steps_)
    (gh_release,) = [s for s in steps_ if s.get("uses", "").startswith("softprops/action-gh-release@")]
    assert gh_release["with"]["body_path"] == "dist/release-notes.md"


def test_the_model_release_passes_every_input_to_the_rollout():
    workflow = load(REPO / ".github/workflows/model-release.yml")
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    steps_ = workflow["jobs"]["rollout"]["steps"]
    (step,) = [s for s in steps_ if "model_server.rollout" in s.get("run", "")]
    text = str(step) + str(workflow["jobs"]["rollout"]["env"])
    for name in inputs.keys() - {"profile_data"}:
        assert f"inputs.{name}" in text, f"input {name} reaches no flag"
    # The drift profile is written and stored beside the new version before the rollout deploys it.
    (profiling,) = [s for s in steps_ if "model_server.profile" in s.get("run", "")]
    assert steps_.index(profiling) < steps_.index(step) and "inputs.profile_data" in str(profiling)
    assert "scripts/publish_profile.py" in profiling["run"] and '"$MODEL_URI"' in profiling["run"]
    from model_server.rollout.settings import RolloutSettings

    fields = RolloutSettings.__dataclass_fields__
    for variable in step["env"]:
        assert variable.removeprefix("MODEL_SERVER_").lower() in fields, variable
