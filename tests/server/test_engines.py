"""--backend in a real server: the twin it predicts with is logged, and answers as scikit-learn does
(the engines themselves are unit-tested in tests/unit/test_engines.py)."""

import httpx
import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from tests.support.servers import start_server


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
        assert "predicting with OnnxEngine" in served.log()
        body = {
            "inputs": [{"name": "x", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        }
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


def test_sklearn_backend_serves_the_estimator_itself(tmp_path):
    X, y = make_classification(n_samples=200, n_features=4, n_informative=3, n_redundant=0, random_state=1)
    model = LogisticRegression().fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    with start_server(tmp_path, "lr", "--backend=sklearn") as served:
        assert "predicting with scikit-learn" in served.log()
        response = httpx.post(
            f"{served.http_url}/v1/models/lr:predict",
            json={"instances": X[:20].tolist(), "parameters": {"probabilities": True}},
        )
    assert response.json()["predictions"] == model.predict(X[:20]).tolist()
    np.testing.assert_allclose(response.json()["probabilities"], model.predict_proba(X[:20]), atol=1e-12)
