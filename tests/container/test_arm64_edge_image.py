"""The edge image built for linux/arm64 on this amd64 machine (build-image.sh --platform) and run
under qemu user emulation: arm64 code throughout, an interpreter that runs, and, where the
emulator can import ONNX Runtime, the demo model's ONNX export served with the same answers.

Needs qemu-aarch64 registered with binfmt_misc (Debian's qemu-user-static) and an arm64 base image
(scripts/prepare-podman.sh --arch arm64); without them it skips and says which is missing, unless
MODEL_SERVER_REQUIRE_ARM64=1 (set by .ci/run where it could set both up) makes that a failure.
"""

from __future__ import annotations

import os
import platform
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris

from model_server.demo import train

from .conftest import BUILD_TIMEOUT_S
from .container_engine import BUILD_IMAGE, RUN_LIMITS, Image, running_container

pytestmark = pytest.mark.timeout(3600)
ARM64_TAG = "localhost/model-server-edge:test-arm64"
ARM64_BASE_IMAGE = "localhost/debian-python:bookworm-arm64"
QEMU_BINFMT = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
ROWS = load_iris().data


def _missing(engine) -> str:
    if platform.machine() in ("aarch64", "arm64"):
        return "this machine is arm64 already: the native edge image test covers it"
    if not QEMU_BINFMT.exists() or "enabled" not in QEMU_BINFMT.read_text():
        return f"qemu user emulation for arm64 is not registered ({QEMU_BINFMT}): apt-get install qemu-user-static"
    if engine.run("image", "inspect", ARM64_BASE_IMAGE, check=False).returncode != 0:
        return f"no arm64 base image {ARM64_BASE_IMAGE}: run scripts/prepare-podman.sh --arch arm64"
    return ""


@pytest.fixture(scope="module")
def arm64_image(engine, image):
    missing = _missing(engine)
    if missing:
        if os.environ.get("MODEL_SERVER_REQUIRE_ARM64") == "1":
            pytest.fail(f"MODEL_SERVER_REQUIRE_ARM64=1 but {missing}")
        pytest.skip(missing)
    command = [BUILD_IMAGE, "--engine", Path(engine.command[0]).name, "--tag", ARM64_TAG, "--target", "edge"]
    command += ["--platform", "linux/arm64", "--base-image", ARM64_BASE_IMAGE, "--build-base-image", image.base_image]
    result = subprocess.run(command, capture_output=True, text=True, timeout=2 * BUILD_TIMEOUT_S)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    yield Image(ARM64_TAG, ARM64_BASE_IMAGE, result.stdout)
    engine.run("rmi", "--force", ARM64_TAG, check=False)


def _python(engine, code: str, timeout: float) -> str | None:
    """What CODE prints, run by the image's (emulated) interpreter; None if it did not end in time."""
    name = f"model-server-arm64-{uuid.uuid4().hex[:10]}"
    command = ("run", "--rm", "--name", name, "--arch", "arm64", *RUN_LIMITS, "--entrypoint", "python", ARM64_TAG)
    try:
        return engine(*command, "-c", code, timeout=timeout)
    except subprocess.TimeoutExpired:
        engine.run("rm", "--force", name, check=False)  # an emulated process can outlive its client
        return None


def test_arm64_edge_image_holds_arm64_code_that_runs_under_emulation(engine, arm64_image):
    assert engine("image", "inspect", "--format", "{{.Architecture}}", ARM64_TAG) == "arm64"
    probe = (
        "import glob, importlib.util, platform, numpy\n"
        "capi = importlib.util.find_spec('onnxruntime').submodule_search_locations[0] + '/capi/*.so'\n"
        "print(platform.machine(), int(numpy.arange(10).sum()),"
        " sorted({int.from_bytes(open(f, 'rb').read(20)[18:20], 'little') for f in glob.glob(capi)}))"
    )
    # 183 is EM_AARCH64, the ELF machine of every ONNX Runtime extension module.
    assert _python(engine, probe, timeout=300) == "aarch64 45 [183]"


def test_arm64_edge_image_serves_the_demo_model_under_emulation(engine, arm64_image):
    if _python(engine, "import onnxruntime", timeout=120) is None:
        qemu = subprocess.run(["sh", "-c", "qemu-aarch64-static --version | head -1"], capture_output=True, text=True)
        pytest.skip(
            f"importing onnxruntime under {qemu.stdout.strip() or 'qemu user emulation'} never returns (a futex "
            "wait in emulated threads): the arm64 image is built and its interpreter runs (test above); serving "
            "it is checked on arm64 hardware only"
        )
    expected = train(1).predict(ROWS).tolist()
    with running_container(engine, arm64_image, run_args=("--arch", "arm64")) as container:
        assert container.engine("exec", container.name, "uname", "-m") == "aarch64"
        v1 = httpx.post(f"{container.http_url}/v1/models/iris:predict", json={"instances": ROWS.tolist()}, timeout=60)
        assert v1.json()["predictions"] == expected
        tensor = {"name": "x", "datatype": "FP64", "shape": list(ROWS.shape), "data": ROWS.ravel().tolist()}
        v2 = httpx.post(f"{container.http_url}/v2/models/iris/infer", json={"inputs": [tensor]}, timeout=60)
        assert v2.json()["outputs"][0]["data"] == expected
