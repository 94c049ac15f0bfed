"""Predictor: artifact + schema + engine + output types, from a decoded request to its outputs."""

import asyncio

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression

from model_server.core.artifact import ModelArtifact, write_metadata
from model_server.core.codec import LABEL, PREDICT, PROBA, Tensor, V1Request, V2Request
from model_server.core.errors import ArtifactError, InvalidInput
from model_server.core.predictor import Predictor

X, _ = load_iris(return_X_y=True)


def test_metadata_of_the_demo_model(iris_predictor):
    assert iris_predictor.version == "1"
    assert [i["name"] for i in iris_predictor.inputs_metadata()] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert iris_predictor.outputs_metadata() == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
    ]


def test_v1_and_v2_give_the_estimators_answers(iris_predictor):
    estimator = iris_predictor.estimator
    rows = X[::7]
    v1 = asyncio.run(iris_predictor.infer(V1Request(rows.tolist(), [PREDICT, PROBA, LABEL])))
    v2 = asyncio.run(iris_predictor.infer(V2Request(None, [Tensor("x", "FP64", rows)], [LABEL, PREDICT])))
    assert [o.name for o in v1] == [PREDICT, PROBA, LABEL] and [o.name for o in v2] == [LABEL, PREDICT]
    expected = estimator.predict(rows)
    assert v1[0].data.tolist() == v2[1].data.tolist() == expected.tolist()
    np.testing.assert_allclose(v1[1].data, estimator.predict_proba(rows), rtol=1e-12)
    assert v1[2].data.tolist() == [["setosa", "versicolor", "virginica"][c] for c in expected]


def test_default_output_is_predict(iris_predictor):
    (only,) = asyncio.run(iris_predictor.infer(V2Request(None, [Tensor("x", "FP64", X[:2])], [])))
    assert only.name == PREDICT and only.datatype == "INT64"


@pytest.mark.parametrize(
    "request_,message",
    [
        (V1Request([[1, 2, 3]], [PREDICT]), "instance 0 has 3 features, the model expects 4"),
        (V2Request(None, [Tensor("x", "FP64", X[:1])], ["logits"]), "unknown outputs ['logits']"),
    ],
)
def test_client_mistakes_are_invalid_input(iris_predictor, request_, message):
    with pytest.raises(InvalidInput) as error:
        iris_predictor.prepare(request_)
    assert message in str(error.value)


def test_v1_names_the_parameter_a_regressor_lacks(tmp_path):
    joblib.dump(LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0]), tmp_path / "model.joblib")
    predictor = Predictor.load(tmp_path)
    with pytest.raises(InvalidInput, match='parameter "probabilities" is not available for LinearRegression'):
        predictor.prepare(V1Request([[1.0]], [PREDICT, PROBA]))
    assert predictor.outputs_metadata() == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


def test_class_labels_must_match_the_classes(demo_model_dir, tmp_path):
    (tmp_path / "model.joblib").write_bytes((demo_model_dir / "model.joblib").read_bytes())
    write_metadata(tmp_path, class_labels=["a", "b"])
    with pytest.raises(ArtifactError, match="metadata has 2 class_labels, the estimator has 3 classes"):
        Predictor(ModelArtifact.load(tmp_path))


def test_values_the_fitted_model_rejects_are_the_clients(iris_predictor, monkeypatch):
    def reject(X):
        raise ValueError("Found unknown categories ['purple']")

    monkeypatch.setattr(iris_predictor, "engine", type("E", (), {"predict": staticmethod(reject)}))
    with pytest.raises(InvalidInput, match="the model rejected the input: Found unknown categories"):
        iris_predictor.predict_batch(X[:1], frozenset({PREDICT}))


def test_predict_seconds_are_observed(demo_model_dir):
    observed = []
    predictor = Predictor.load(demo_model_dir, observe_predict_seconds=observed.append)
    asyncio.run(predictor.infer(V1Request(X[:3].tolist(), [PREDICT])))
    assert len(observed) == 1 and 0 <= observed[0] < 5
