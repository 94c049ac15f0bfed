"""--backend: faster twins (LinearEngine, OnnxEngine) give scikit-learn's answers, or scikit-learn stays."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from model_server.core.engines import LinearEngine, NanToEstimator, engine_for, parity_problem, parity_sample
from model_server.core.onnx.engine import OnnxEngine


@pytest.fixture(scope="module")
def forest():
    X, y = make_classification(n_samples=600, n_features=20, n_informative=8, n_classes=3, random_state=0)
    return RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y), None, X


def test_parity_check_refuses_a_twin_that_disagrees():
    X, y = make_classification(n_samples=200, n_features=4, n_informative=3, n_redundant=0, random_state=1)
    model = LogisticRegression().fit(X, y)
    assert parity_problem(model, OnnxEngine(model, parity_sample(4)), parity_sample(4)) is None
    other = LinearEngine(LogisticRegression().fit(X, 1 - y))  # the opposite classifier
    assert "labels differ" in parity_problem(model, other, parity_sample(4))
    assert engine_for(model, "onnx", 4, numeric=False) is model  # string features: not converted


@pytest.mark.parametrize("n_classes", [2, 3])
def test_linear_engine_is_logistic_regression_without_the_validation(n_classes):
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=n_classes, random_state=2)
    model = LogisticRegression().fit(X, np.array(["a", "b", "c"])[y])
    engine = engine_for(model, "auto", 6, numeric=True)
    assert isinstance(engine, LinearEngine) and engine.inline_max_rows >= 1
    rows = np.random.default_rng(5).normal(size=(50, 6)) * 3
    assert engine.predict(rows).tolist() == model.predict(rows).tolist()
    np.testing.assert_allclose(engine.predict_proba(rows), model.predict_proba(rows), rtol=0, atol=1e-12)


def test_auto_picks_by_estimator_and_sklearn_never_converts(forest):
    model, _, X = forest
    labels = model.predict(X)
    linear = LogisticRegression().fit(X, labels)
    piped = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, random_state=0)).fit(X, labels)
    scaled_linear = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, labels)
    assert isinstance(engine_for(model, "auto", 20, numeric=True), OnnxEngine)
    assert isinstance(engine_for(piped, "auto", 20, numeric=True), OnnxEngine)
    assert isinstance(engine_for(linear, "auto", 20, numeric=True), LinearEngine)
    assert engine_for(scaled_linear, "auto", 20, numeric=True) is scaled_linear
    assert isinstance(engine_for(linear, "onnx", 20, numeric=True), OnnxEngine)
    assert engine_for(model, "sklearn", 20, numeric=True) is model
    assert engine_for(linear, "sklearn", 20, numeric=True) is linear


def test_rows_with_nan_never_reach_a_twin_that_differs_on_them(forest):
    model, _, X = forest
    engine = engine_for(model, "auto", 20, numeric=True, allow_nan=True)
    assert isinstance(engine, NanToEstimator) and isinstance(engine.twin, OnnxEngine)
    holes = X[:64].copy()
    holes[np.random.default_rng(3).random(holes.shape) < 0.2] = np.nan
    assert engine.predict(holes).tolist() == model.predict(holes).tolist()
    np.testing.assert_array_equal(engine.predict_proba(holes), model.predict_proba(holes))
    assert not engine.fast_for(holes) and engine.fast_for(X[:64])  # NaN batches stay off the event loop
    assert engine.predict(X[:64]).tolist() == model.predict(X[:64]).tolist()
