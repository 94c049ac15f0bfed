"""The image run as KServe runs it: read-only root filesystem, /tmp on tmpfs, requests through the
published ports. Covers the baked-in demo models, a model mounted over /mnt/models, the user the
server runs as, and shutdown on SIGTERM."""

from __future__ import annotations

import subprocess

import grpc
import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.datasets import load_iris

from model_server.demo import train

from .container_engine import running_container, write_demo_model

pytestmark = pytest.mark.timeout(1800)  # the first test may build the image (a few minutes, cold)

ROWS = load_iris().data


@pytest.fixture(scope="module")
def expected_v1() -> list[int]:
    """What the demo model v1, trained here by the same code, predicts for every iris row."""
    return train(1).predict(ROWS).tolist()


@pytest.fixture(scope="module")
def demo(engine, image):
    """The image with its default command: the baked-in demo model v1 as 'iris'."""
    with running_container(engine, image) as container:
        yield container


def _v2_body(rows: np.ndarray) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}]}


def _v2_infer(container, rows: np.ndarray) -> dict:
    response = httpx.post(f"{container.http_url}/v2/models/iris/infer", json=_v2_body(rows), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_v1_predict_with_baked_demo_model(demo, expected_v1):
    response = httpx.post(f"{demo.http_url}/v1/models/iris:predict", json={"instances": ROWS.tolist()}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["predictions"] == expected_v1


def test_v2_rest_infer_with_baked_demo_model(demo, expected_v1):
    body = _v2_infer(demo, ROWS)
    assert body["model_name"] == "iris" and body["model_version"] == "1"
    predict = next(output for output in body["outputs"] if output["name"] == "predict")
    assert predict["data"] == expected_v1


def test_v2_grpc_infer_with_baked_demo_model(demo, expected_v1):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP64", shape=list(ROWS.shape), contents=pb.InferTensorContents(fp64_contents=ROWS.ravel())
    )
    with grpc.insecure_channel(demo.grpc_target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
        response = stub.ModelInfer(pb.ModelInferRequest(model_name="iris", inputs=[tensor]), timeout=30)
    assert response.model_version == "1"
    assert response.outputs[0].name == "predict"
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == expected_v1


def test_metrics_count_the_requests(demo):
    _v2_infer(demo, ROWS[:1])
    metrics = httpx.get(f"{demo.http_url}/metrics", timeout=30).text
    assert 'model_server_requests_total{code="200",model="iris",protocol="v2",version="1"}' in metrics


def test_server_process_runs_as_non_root(demo):
    """PID 1 is the server itself (no shell in between); its real, effective, saved and
    filesystem UIDs are all 1000."""
    status = demo.engine("exec", demo.name, "cat", "/proc/1/status")
    name = next(line.split()[1] for line in status.splitlines() if line.startswith("Name:"))
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert name.startswith("python")
    assert uids == ["1000"] * 4


def test_root_filesystem_is_read_only_and_tmp_is_writable(demo):
    # Even root cannot write outside /tmp: the server above answered on a read-only filesystem.
    write_root = demo.engine.run("exec", "--user", "0", demo.name, "touch", "/opt/venv/probe", check=False)
    assert write_root.returncode != 0 and "Read-only file system" in write_root.stderr
    demo.engine("exec", demo.name, "touch", "/tmp/probe")


def test_every_model_server_module_imports_in_the_pruned_venv(demo):
    """The venv prune keeps whatever any module of the package imports (batch scoring's modules
    need pyarrow, an extra the default image leaves out: checked when it is there), imported as
    the server imports them: KServe's modules without kserve/__init__, whose Kubernetes API client
    the image leaves out."""
    walk = (
        "from model_server.kserve.import_shim import skip_package_init; skip_package_init()\n"
        "import importlib, importlib.util, pkgutil, model_server\n"
        "optional = {'model_server.batch.': 'pyarrow'}\n"
        "names = [m.name for m in pkgutil.walk_packages(model_server.__path__, 'model_server.')\n"
        "         if not m.name.endswith('__main__') and not any(\n"
        "             m.name.startswith(p) and importlib.util.find_spec(d) is None for p, d in optional.items())]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    assert int(demo.engine("exec", demo.name, "python", "-c", walk)) > 0


def test_batch_scoring_without_its_extra_says_what_to_install(demo):
    done = demo.engine.run(
        "exec",
        demo.name,
        "python",
        "-m",
        "model_server.batch",
        "--input=/tmp/x.parquet",
        "--output=/tmp/out",
        check=False,
    )
    has_pyarrow = demo.engine.run("exec", demo.name, "python", "-c", "import pyarrow", check=False).returncode == 0
    if has_pyarrow:  # an image built with --extra-packages pyarrow: the input is simply missing
        assert done.returncode == 1 and "no such file or directory" in done.stderr
    else:
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == "batch: needs pyarrow: pip install 'sklearn-model-server[batch]'"


def test_baked_demo_model_v2_is_a_forest_predicted_by_onnx_runtime(engine, image):
    """The kind canary workflow serves /opt/model-server/demo-v2 (a random forest) as a second
    revision; the image carries ONNX Runtime, so the forest is predicted by its ONNX twin."""
    with running_container(engine, image, "--model_name=iris", "--model_dir=/opt/model-server/demo-v2") as container:
        body = _v2_infer(container, ROWS)
        assert body["model_version"] == "2"
        assert body["outputs"][0]["data"] == train(2).predict(ROWS).tolist()
        assert "predicting with OnnxEngine" in container.logs()


def test_model_mounted_at_mnt_models_replaces_the_demo(engine, image, tmp_path):
    """KServe's storage initializer mounts the real model at /mnt/models: it wins over the demo."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    write_demo_model(engine, image, model_dir, "--version", "2")
    assert (model_dir / "model.joblib").is_file()
    with running_container(engine, image, run_args=("--volume", f"{model_dir}:/mnt/models:ro")) as container:
        assert _v2_infer(container, ROWS[:2])["model_version"] == "2"
        metadata = httpx.get(f"{container.http_url}/v2/models/iris", timeout=30).json()
        assert metadata["versions"] == ["2"]


def test_sigterm_stops_the_server_within_10_seconds(engine, image):
    with running_container(engine, image) as container:
        engine("kill", "--signal", "TERM", container.name)
        try:
            exit_code = engine("wait", container.name, timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 10 s after SIGTERM:\n{container.logs()[-4000:]}")
        assert exit_code == "0", container.logs()[-4000:]
