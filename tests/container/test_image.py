"""The built image: size budget, runtime configuration, OCI labels, what build-image.sh reports."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from .container_engine import REPO, RUN_LIMITS

pytestmark = pytest.mark.timeout(1800)  # the first test builds the image (a few minutes, cold)

SIZE_BUDGET_BYTES = 550 * 1000 * 1000


def _size(engine, image) -> int:
    return int(engine("image", "inspect", "--format", "{{.Size}}", image.tag))


def _config(engine, image) -> dict:
    return json.loads(engine("image", "inspect", "--format", "{{json .Config}}", image.tag))


def test_build_script_prints_tag_and_size(engine, image):
    assert f"image: {image.tag}" in image.build_output
    printed = re.search(r"^size: (\d+) MB \((\d+) bytes\)$", image.build_output, re.MULTILINE)
    assert printed, image.build_output[-2000:]
    assert int(printed.group(2)) == _size(engine, image)


def test_image_fits_the_size_budget(engine, image):
    size = _size(engine, image)
    assert size <= SIZE_BUDGET_BYTES, f"{image.tag} on {image.base_image} is {size / 1e6:.0f} MB"


def test_runtime_config(engine, image):
    config = _config(engine, image)
    assert config["User"] == "1000:1000"
    assert set(config["ExposedPorts"]) == {"8080/tcp", "8081/tcp"}
    assert config["Entrypoint"] == ["/opt/venv/bin/python", "-m", "model_server"]
    assert config["Cmd"] == ["--model_name=iris", "--model_dir=/mnt/models"]
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]


def test_oci_labels(engine, image):
    labels = _config(engine, image)["Labels"]
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.title"] == "model-server"
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.base.name"] == image.base_image
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])


def test_no_build_tools_in_the_runtime_image(engine, image):
    """pip and setuptools were pruned from the venv, the compilers never left the build stage."""
    probe = (
        "import importlib.util as u; print([m for m in ('pip', 'setuptools', 'PIL', 'grpc_tools') if u.find_spec(m)])"
    )
    assert engine("run", "--rm", *RUN_LIMITS, "--entrypoint", "/opt/venv/bin/python", image.tag, "-c", probe) == "[]"
