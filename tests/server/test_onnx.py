"""Export to ONNX with a parity guarantee, and ONNX model directories served without scikit-learn:
by the main server (V1, V2, gRPC) and by the edge runtime (V1, V2)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from model_server.core.predictor import Predictor
from tests.support.servers import free_port, start_server, wait_until_ready
from tests.support.tools import REPO

X, Y = make_classification(n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=3)
ROWS = np.random.default_rng(4).normal(size=(150, 6)) * 2
FRAME = pd.DataFrame(
    {"colour": np.random.default_rng(5).choice(["red", "green", "blue"], 300).astype(object), "size": np.arange(300.0)}
)


def export(model_dir: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model_server.export", f"--model_dir={model_dir}", f"--out={out}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def dumped(model, directory: Path) -> Path:
    directory.mkdir(parents=True)
    joblib.dump(model, directory / "model.joblib")
    return directory


@pytest.fixture(scope="module")
def blocking_path(tmp_path_factory) -> str:
    """A PYTHONPATH under which importing any of these fails: the process must not need them."""
    root = tmp_path_factory.mktemp("blocked")
    for name in ("sklearn", "scipy", "kserve", "fastapi", "pandas"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} must not be imported here')\n")
    return str(root)


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(max_iter=500).fit(X, Y),
        RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, Y),
        GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, Y),
    ],
    ids=["logistic-regression", "random-forest", "gradient-boosting"],
)
def test_export_holds_parity_and_serves_the_same_answers(tmp_path, model):
    done = export(dumped(model, tmp_path / "src"), tmp_path / "onnx")
    assert done.returncode == 0, done.stderr
    metadata = json.loads((tmp_path / "onnx" / "metadata.json").read_text())
    parity = metadata["export"]["parity"]
    assert parity["rows"] >= 512 and parity["label_mismatches"] == 0
    assert parity["max_abs_diff"]["predict_proba"] <= parity["tolerance"]
    assert metadata["export"]["source"]["sha256"] and metadata["sha256"] == metadata["export"]["onnx_sha256"]
    served = Predictor.load(tmp_path / "onnx")
    assert served.platform == "onnxruntime_onnx"
    assert served.predict_batch(ROWS, frozenset({"predict"}))["predict"].tolist() == model.predict(ROWS).tolist()
    if isinstance(model, RandomForestClassifier):  # split thresholds were part of the sample
        assert parity["rows"] > 512


def test_export_of_a_column_transformer_pipeline(tmp_path):
    encode = ColumnTransformer(
        [("c", OneHotEncoder(handle_unknown="ignore"), ["colour"]), ("n", StandardScaler(), ["size"])]
    )
    model = make_pipeline(encode, LogisticRegression()).fit(FRAME, (FRAME["colour"] == "red") ^ (FRAME["size"] > 150))
    done = export(dumped(model, tmp_path / "src"), tmp_path / "onnx")
    assert done.returncode == 0, done.stderr
    metadata = json.loads((tmp_path / "onnx" / "metadata.json").read_text())
    assert metadata["features"] == [{"name": "colour", "datatype": "BYTES"}, {"name": "size", "datatype": "FP64"}]
    served = Predictor.load(tmp_path / "onnx")
    X_served = served.schema.from_rows(FRAME.to_dict("records"))
    assert type(X_served).__name__ == "ColumnBatch"  # no DataFrame: no pandas needed to serve it
    assert served.predict_batch(X_served, frozenset({"predict"}))["predict"].tolist() == model.predict(FRAME).tolist()


def test_parity_failure_writes_nothing_and_shows_the_worst_rows(tmp_path):
    model = LogisticRegression().fit(X[:, :2], (X[:, 0] + X[:, 1] > 0).astype(int))
    w, b = model.coef_[0], model.intercept_[0]
    # Rows on the decision boundary, where float32 arithmetic flips labels that float64 keeps.
    xs = np.linspace(-3, 3, 400)
    boundary = np.column_stack([xs, -(b + w[0] * xs) / w[1] + np.linspace(-1e-7, 1e-7, 400)])
    sample = tmp_path / "boundary.csv"
    pd.DataFrame(boundary).to_csv(sample, index=False)
    done = export(dumped(model, tmp_path / "src"), tmp_path / "onnx", f"--sample={sample}")
    assert done.returncode == 1
    assert "parity check failed: labels differ on" in done.stderr and "worst rows" in done.stderr
    assert "row " in done.stderr
    assert not (tmp_path / "onnx").exists()


def test_an_unsupported_step_is_named(tmp_path):
    model = make_pipeline(FunctionTransformer(np.sqrt), LogisticRegression()).fit(np.abs(X), Y)
    done = export(dumped(model, tmp_path / "src"), tmp_path / "onnx")
    assert done.returncode == 1 and "skl2onnx cannot convert Pipeline" in done.stderr
    assert "FunctionTransformer" in done.stderr and not (tmp_path / "onnx").exists()


@pytest.fixture(scope="module")
def onnx_forest(tmp_path_factory):
    root = tmp_path_factory.mktemp("forest")
    model = RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0).fit(X, Y)
    assert export(dumped(model, root / "src"), root / "onnx").returncode == 0
    return model, root / "onnx"


def test_main_server_serves_onnx_without_scikit_learn(onnx_forest, blocking_path):
    model, onnx_dir = onnx_forest
    env = {"PYTHONPATH": _only(blocking_path, "sklearn", "scipy")}
    with start_server(onnx_dir, "forest", env=env) as served:
        expected = model.predict(ROWS).tolist()
        v1 = httpx.post(f"{served.http_url}/v1/models/forest:predict", json={"instances": ROWS.tolist()})
        assert v1.json()["predictions"] == expected
        tensor = {"name": "x", "datatype": "FP64", "shape": list(ROWS.shape), "data": ROWS.ravel().tolist()}
        v2 = httpx.post(f"{served.http_url}/v2/models/forest/infer", json={"inputs": [tensor]})
        assert v2.json()["outputs"][0]["data"] == expected
        request = pb.ModelInferRequest(
            model_name="forest",
            inputs=[pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=list(ROWS.shape))],
            raw_input_contents=[ROWS.astype("<f8").tobytes()],
        )
        with grpc.insecure_channel(served.grpc_target) as channel:
            response = GRPCInferenceServiceStub(channel).ModelInfer(request)
        assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == expected
        assert httpx.get(f"{served.http_url}/v2/models/forest").json()["platform"] == "onnxruntime_onnx"
        assert "predicting with ONNX Runtime" in served.log()


def _only(blocking_path: str, *names: str) -> str:
    """A copy of the blocking directory with only these modules blocked."""
    root = Path(blocking_path).parent / f"only-{'-'.join(names)}"
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "__init__.py").write_text(f"raise ImportError('{name} must not be imported here')\n")
    return str(root)


def test_edge_runtime_serves_onnx_with_none_of_kserve_fastapi_pandas_sklearn_scipy(
    onnx_forest, blocking_path, tmp_path
):
    model, onnx_dir = onnx_forest
    port = free_port()
    log_path = tmp_path / "edge.log"
    command = [
        sys.executable,
        "-m",
        "model_server.edge",
        f"--model_dir={onnx_dir}",
        "--model_name=forest",
        f"--http_port={port}",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={"PYTHONPATH": blocking_path}, cwd=REPO
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(
            url, lambda: process.poll() is not None and f"edge exited with {process.returncode}", log_path.read_text, 60
        )
        expected = model.predict(ROWS).tolist()
        v1 = httpx.post(
            f"{url}/v1/models/forest:predict", json={"instances": ROWS.tolist(), "parameters": {"probabilities": True}}
        )
        assert v1.json()["predictions"] == expected
        np.testing.assert_allclose(v1.json()["probabilities"], model.predict_proba(ROWS), atol=1e-5)
        tensor = {"name": "x", "datatype": "FP32", "shape": list(ROWS.shape), "data": ROWS.ravel().tolist()}
        assert (
            httpx.post(f"{url}/v2/models/forest/infer", json={"inputs": [tensor]}).json()["outputs"][0]["data"]
            == expected
        )
        # MLflow's /invocations too, still without pandas: JSON and CSV (positional: a nameless model).
        assert httpx.post(f"{url}/invocations", json={"instances": ROWS.tolist()}).json() == {"predictions": expected}
        csv = "\n".join(
            [",".join(f"f{j}" for j in range(ROWS.shape[1]))] + [",".join(map(repr, r)) for r in ROWS.tolist()]
        )
        by_csv = httpx.post(f"{url}/invocations", content=csv, headers={"content-type": "text/csv"})
        assert by_csv.json() == {"predictions": expected}
        wrong = httpx.post(f"{url}/v1/models/forest:predict", json={"instances": [[1, 2, 3]]})
        assert wrong.status_code == 400 and "instance 0 has 3 features, the model expects 6" in wrong.json()["error"]
        assert httpx.get(f"{url}/v2/models/forest").json()["platform"] == "onnxruntime_onnx"
        assert "model_server_requests_total" in httpx.get(f"{url}/metrics").text
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
