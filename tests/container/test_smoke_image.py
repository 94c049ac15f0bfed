"""scripts/smoke-image.sh, which CI's image job runs on the image it built, on the image the tests built."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.servers import free_port

from .container_engine import REPO

pytestmark = pytest.mark.timeout(1800)  # the image fixture may build the image (a few minutes, cold)


def smoke_image(tag: str) -> subprocess.CompletedProcess:
    command = ["bash", str(REPO / "scripts" / "smoke-image.sh"), tag, str(free_port()), str(free_port())]
    environment = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)


def test_smoke_image_checks_every_protocol_of_a_built_image(image):
    result = smoke_image(image.tag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "V2 gRPC infer" in result.stdout and "smoke test passed against" in result.stdout


def test_smoke_image_fails_on_an_image_it_cannot_run(engine):
    result = smoke_image("localhost/model-server:no-such-image")
    assert result.returncode != 0
