"""The edge image (Dockerfile target edge): built with the real engine, run read-only as UID 1000,
serving the demo model exported to ONNX over V1 and V2 REST, within its size budget."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris

from model_server.demo import train

from .conftest import BUILD_TIMEOUT_S
from .container_engine import BUILD_IMAGE, Image, running_container

pytestmark = pytest.mark.timeout(1800)
EDGE_TAG = "localhost/model-server-edge:test"
COMPRESSED_BUDGET_BYTES = 100 * 1000 * 1000
ROWS = load_iris().data


@pytest.fixture(scope="module")
def edge_image(engine, image):
    """Built after the main image: the build stage it exports the demo model in is cached."""
    command = [BUILD_IMAGE, "--engine", Path(engine.command[0]).name, "--tag", EDGE_TAG]
    command += ["--base-image", image.base_image, "--target", "edge"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    yield Image(EDGE_TAG, image.base_image, result.stdout)
    engine.run("rmi", "--force", EDGE_TAG, check=False)


def test_edge_image_serves_the_exported_demo_model(engine, edge_image):
    expected = train(1).predict(ROWS).tolist()
    with running_container(engine, edge_image) as container:
        v1 = httpx.post(f"{container.http_url}/v1/models/iris:predict", json={"instances": ROWS.tolist()}, timeout=30)
        assert v1.json()["predictions"] == expected
        tensor = {"name": "x", "datatype": "FP64", "shape": list(ROWS.shape), "data": ROWS.ravel().tolist()}
        v2 = httpx.post(f"{container.http_url}/v2/models/iris/infer", json={"inputs": [tensor]}, timeout=30)
        assert v2.json()["outputs"][0]["data"] == expected
        metadata = httpx.get(f"{container.http_url}/v2/models/iris", timeout=30).json()
        assert metadata["platform"] == "onnxruntime_onnx"
        assert container.engine("exec", container.name, "id", "-u").strip() == "1000"
        modules = (
            "import sys, model_server.edge.__main__; "
            "print(sorted({'kserve', 'sklearn', 'scipy', 'pandas'} & set(sys.modules)))"
        )
        assert container.engine("exec", container.name, "python", "-c", modules).strip() == "[]"


def test_edge_image_fits_its_size_budget(engine, edge_image):
    save = subprocess.Popen([*engine.command, "save", EDGE_TAG], stdout=subprocess.PIPE)
    compressed = subprocess.run(["gzip", "-c"], stdin=save.stdout, capture_output=True, check=True).stdout
    assert save.wait() == 0
    assert len(compressed) <= COMPRESSED_BUDGET_BYTES, f"{EDGE_TAG}: {len(compressed) / 1e6:.0f} MB compressed"
