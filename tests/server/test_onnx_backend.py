"""--backend auto/onnx: the same answers as scikit-learn, or scikit-learn itself when that is not safe."""

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import start_server
from model_server.onnx_backend import OnnxClassifier, convert, engine_for, parity_problem, parity_sample


@pytest.fixture(scope="module")
def forest(tmp_path_factory):
    X, y = make_classification(n_samples=600, n_features=20, n_informative=8, n_classes=3, random_state=0)
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    model_dir = tmp_path_factory.mktemp("forest")
    joblib.dump(model, model_dir / "model.joblib")
    return model, model_dir, X


@pytest.mark.parametrize("flags", [(), ("--backend=onnx",)], ids=["default-auto", "onnx"])
def test_forest_served_by_onnxruntime_answers_like_sklearn(forest, flags):
    model, model_dir, X = forest
    rows = np.vstack([X[:100], np.random.default_rng(3).normal(size=(100, 20)) * 5])
    with start_server(model_dir, "forest", *flags) as served:
        assert "predicting with onnxruntime" in served.log()
        body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}],
                "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}  # fmt: skip
        outputs = httpx.post(f"{served.http_url}/v2/models/forest/infer", json=body).json()["outputs"]
    assert outputs[0]["data"] == model.predict(rows).tolist()
    np.testing.assert_allclose(np.reshape(outputs[1]["data"], (200, 3)), model.predict_proba(rows), atol=1e-6)


def test_models_that_cannot_convert_keep_sklearn(tmp_path):
    model_dir = tmp_path / "reg"
    model_dir.mkdir()
    joblib.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0]), model_dir / "model.joblib")
    with start_server(model_dir, "reg", "--backend=onnx") as served:
        assert "using scikit-learn" in served.log() and "predicting with scikit-learn" in served.log()
        response = httpx.post(f"{served.http_url}/v1/models/reg:predict", json={"instances": [[3.0]]})
        assert response.json()["predictions"] == pytest.approx([6.0])


def test_parity_check_refuses_a_converted_model_that_disagrees():
    X, y = make_classification(n_samples=200, n_features=4, n_informative=3, n_redundant=0, random_state=1)
    model = LogisticRegression().fit(X, y)
    converted = convert(model, 4, numeric=True)
    assert isinstance(converted, OnnxClassifier)
    assert parity_problem(model, converted, parity_sample(4)) is None
    other = convert(LogisticRegression().fit(X, 1 - y), 4, numeric=True)  # the opposite classifier
    assert "labels differ" in parity_problem(model, other, parity_sample(4))
    assert convert(model, 4, numeric=False) is None  # string features: not converted


def test_auto_converts_ensembles_only_and_sklearn_never(forest):
    model, _, X = forest
    linear = LogisticRegression().fit(X, model.predict(X))
    piped = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, model.predict(X))
    assert isinstance(engine_for(model, "auto", 20, numeric=True), OnnxClassifier)
    assert isinstance(engine_for(piped, "auto", 20, numeric=True), OnnxClassifier)
    assert engine_for(linear, "auto", 20, numeric=True) is linear  # little to gain, ~1 s of imports to lose
    assert isinstance(engine_for(linear, "onnx", 20, numeric=True), OnnxClassifier)
    assert engine_for(model, "sklearn", 20, numeric=True) is model
