"""Container fixtures: the engine scripts/build-image.sh picks (Docker if its engine answers, else
Podman) and the image, built once per session with it.

Without an engine the tests skip, naming what is missing; with MODEL_SERVER_REQUIRE_CONTAINER=1
(CI) a missing engine fails them instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .container_engine import BUILD_IMAGE, LOCAL_BASE_IMAGE, TEST_TAG, Engine, Image

BUILD_TIMEOUT_S = 1500


@pytest.fixture(scope="session")
def engine() -> Engine:
    result = subprocess.run([BUILD_IMAGE, "--print-engine"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        reason = result.stderr.strip() or "scripts/build-image.sh --print-engine found no container engine"
        if os.environ.get("MODEL_SERVER_REQUIRE_CONTAINER") == "1":
            pytest.fail(f"MODEL_SERVER_REQUIRE_CONTAINER=1 but {reason}")
        pytest.skip(reason)
    return Engine(result.stdout.split())


def _base_image(engine: Engine) -> str:
    if os.environ.get("MODEL_SERVER_BASE_IMAGE"):
        return os.environ["MODEL_SERVER_BASE_IMAGE"]
    if engine.run("image", "inspect", LOCAL_BASE_IMAGE, check=False).returncode == 0:
        return LOCAL_BASE_IMAGE
    return "python:3.11-slim"


@pytest.fixture(scope="session")
def image(engine: Engine):
    base_image = _base_image(engine)
    command = [BUILD_IMAGE, "--engine", Path(engine.command[0]).name, "--tag", TEST_TAG, "--base-image", base_image]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    if result.returncode != 0:
        hint = "" if base_image == LOCAL_BASE_IMAGE else " (no registry? run scripts/prepare-podman.sh)"
        pytest.fail(f"image build on {base_image} failed{hint}:\n{(result.stdout + result.stderr)[-6000:]}")
    yield Image(TEST_TAG, base_image, result.stdout)
    engine.run("rmi", "--force", TEST_TAG, check=False)
