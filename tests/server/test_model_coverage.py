"""Models users train, served as they are and compared row for row with the estimator's own
answers over V1, V2 JSON, V2 binary and gRPC, alone and with concurrent requests batched together.

Each case: fit the model the usual way, dump it (with or without metadata.json), serve it, send
at least 100 rows, and compare with ``predict`` / ``predict_proba`` in this process.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest, RandomForestRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from model_server.core import engines
from model_server.core.artifact import write_metadata
from tests.support.clients import PROTOCOLS, infer
from tests.support.metrics import scrape, total
from tests.support.servers import start_server

RNG = np.random.default_rng(7)
N = 120
WORDS = {
    "sports": ["goal", "match", "team", "score", "league", "coach"],
    "tech": ["python", "cloud", "server", "code", "kernel", "network"],
    "food": ["pasta", "recipe", "sauce", "bread", "spice", "oven"],
}


def documents(n: int) -> tuple[list[str], list[str]]:
    topics = RNG.choice(list(WORDS), size=n)
    docs = [" ".join(RNG.choice(WORDS[t], size=3)) for t in topics]
    return docs, list(topics)


@dataclass
class Case:
    """A fitted model, the inputs to send (name, datatype, array), and what the estimator says."""

    model: object
    inputs: list
    X: object  # what the estimator itself is given for the same rows
    outputs: list[str]
    metadata: dict | None = None

    def expected(self, name: str) -> np.ndarray:
        estimator_method = {"predict": "predict", "predict_proba": "predict_proba", "label": "predict"}[name]
        return np.asarray(getattr(self.model, estimator_method)(self.X))


def text_case(metadata: bool) -> Case:
    train, topics = documents(300)
    model = make_pipeline(TfidfVectorizer(), LinearSVC()).fit(train, topics)
    docs, _ = documents(N)
    docs[:3] = ["goal match team", "python cloud server", "pasta recipe sauce"]  # the issue's own example
    array = np.array(docs, dtype=object)
    meta = {"features": [{"name": "text", "datatype": "BYTES"}]} if metadata else None
    return Case(model, [("text", "BYTES", array)], docs, ["predict", "label"], meta)


def nan_case() -> Case:
    X = RNG.normal(size=(400, 3))
    y = (X[:, 0] > 0).astype(int)
    X[RNG.random(X.shape) < 0.2] = np.nan
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    rows = RNG.normal(size=(N, 3))
    rows[RNG.random(rows.shape) < 0.3] = np.nan
    return Case(model, [("input-0", "FP64", rows)], rows, ["predict", "predict_proba"])


def mixed_case() -> Case:
    def frame(n):
        return pd.DataFrame(
            {
                "colour": RNG.choice(["red", "green", "blue"], size=n).astype(object),
                "size": RNG.normal(10, 3, size=n),
                "shape": RNG.choice(["round", "square"], size=n).astype(object),
            }
        )

    train = frame(300)
    y = ((train["colour"] == "red") ^ (train["size"] > 10)).astype(int)
    encode = ColumnTransformer([("cat", OneHotEncoder(), ["colour", "shape"]), ("num", StandardScaler(), ["size"])])
    model = make_pipeline(encode, LogisticRegression()).fit(train, y)
    rows = frame(N)
    inputs = [
        ("colour", "BYTES", rows["colour"].to_numpy()),
        ("size", "FP64", rows["size"].to_numpy()),
        ("shape", "BYTES", rows["shape"].to_numpy()),
    ]
    return Case(model, inputs, rows, ["predict", "predict_proba", "label"])


def multi_output_case() -> Case:
    X = RNG.normal(size=(200, 4))
    Y = np.column_stack([X[:, 0] * 2, X[:, 1] - X[:, 2]])
    model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X, Y)
    rows = RNG.normal(size=(N, 4))
    return Case(model, [("input-0", "FP64", rows)], rows, ["predict"])


def kmeans_case() -> Case:
    X = RNG.normal(size=(300, 2)) + RNG.choice([-5, 0, 5], size=(300, 1))
    model = KMeans(3, n_init=3, random_state=0).fit(X)
    rows = RNG.normal(size=(N, 2)) * 4
    return Case(model, [("input-0", "FP64", rows)], rows, ["predict"])


def isolation_forest_case() -> Case:
    X = RNG.normal(size=(300, 3))
    model = IsolationForest(n_estimators=20, random_state=0).fit(X)
    rows = np.vstack([RNG.normal(size=(N - 20, 3)), RNG.normal(size=(20, 3)) * 8])
    return Case(model, [("input-0", "FP64", rows)], rows, ["predict"])


def string_labels_case() -> Case:
    X = RNG.normal(size=(300, 2))
    y = np.array(["bird", "cat", "dog"], dtype=object)[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    model = LogisticRegression().fit(X, y)
    rows = RNG.normal(size=(N, 2))
    return Case(model, [("input-0", "FP64", rows)], rows, ["predict", "predict_proba", "label"])


CASES = {
    "text pipeline, no metadata": lambda: text_case(metadata=False),
    "text pipeline, with metadata": lambda: text_case(metadata=True),
    "HistGradientBoosting with NaN": nan_case,
    "ColumnTransformer on a DataFrame, no metadata": mixed_case,
    "multi-output regressor": multi_output_case,
    "KMeans": kmeans_case,
    "IsolationForest": isolation_forest_case,
    "string class labels": string_labels_case,
}


@pytest.fixture(scope="module", params=list(CASES))
def served_case(request, tmp_path_factory):
    case = CASES[request.param]()
    model_dir = tmp_path_factory.mktemp("model")
    joblib.dump(case.model, model_dir / "model.joblib")
    if case.metadata:
        write_metadata(model_dir, **case.metadata)
    # A short batching wait, so that the concurrent requests below do share estimator calls.
    with start_server(model_dir, "m", "--max_batch_wait_ms=5") as served:
        yield served, case


def assert_same(case: Case, name: str, got: np.ndarray) -> None:
    expected = case.expected(name)
    if name == "label":
        expected = np.array([str(c) for c in expected], dtype=object)
    assert got.shape == expected.shape, (name, got.shape, expected.shape)
    if name == "predict_proba":  # ONNX Runtime (float32) may predict: the parity tolerance holds
        np.testing.assert_allclose(got.astype(float), expected, rtol=0, atol=engines.PROBABILITY_TOLERANCE)
    elif expected.dtype.kind == "f":
        np.testing.assert_allclose(got.astype(float), expected, rtol=1e-6, atol=1e-9)
    else:
        assert got.tolist() == expected.tolist(), name


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_row_matches_the_estimator(served_case, protocol):
    served, case = served_case
    result = infer(served, protocol, case.inputs, case.outputs)
    for name in case.outputs:
        assert_same(case, name, result[name])


def test_concurrent_requests_are_batched_and_still_match(served_case):
    served, case = served_case
    before = batch_stats(served)

    def one_row(i):
        inputs = [(name, datatype, array[i : i + 1]) for name, datatype, array in case.inputs]
        return infer(served, "v2-json", inputs, ["predict"])["predict"]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one_row, range(N)))
    assert_same(case, "predict", np.concatenate(answers))
    calls, rows = (a - b for a, b in zip(batch_stats(served), before, strict=True))
    assert rows == N and calls < N, f"{N} single-row requests took {calls} estimator calls"


def batch_stats(served) -> tuple[float, float]:
    text = scrape(served.http_url)
    return total(text, "model_server_batch_size_count"), total(text, "model_server_batch_size_sum")


def test_metadata_tells_the_truth(served_case):
    served, case = served_case
    metadata = httpx.get(f"{served.http_url}/v2/models/m").json()
    outputs = {o["name"]: o for o in metadata["outputs"]}
    answer = case.expected("predict")
    assert outputs["predict"]["shape"] == [-1, *answer.shape[1:]]
    kind = {"i": {"INT32", "INT64"}, "f": {"FP32", "FP64"}, "O": {"BYTES"}, "U": {"BYTES"}}[answer.dtype.kind]
    assert outputs["predict"]["datatype"] in kind
    assert [(i["name"], i["datatype"]) for i in metadata["inputs"]] == (
        [(name, datatype) for name, datatype, _ in case.inputs]
        if len(case.inputs) > 1 or case.inputs[0][2].ndim == 1
        else [("input-0", "FP64")]
    )


def test_null_is_nan_where_the_model_takes_nan(tmp_path):
    case = nan_case()
    joblib.dump(case.model, tmp_path / "model.joblib")
    rows = case.X[:20]
    with_nulls = [[None if np.isnan(v) else v for v in row] for row in rows.tolist()]
    with start_server(tmp_path, "m") as served:
        v1 = httpx.post(f"{served.http_url}/v1/models/m:predict", json={"instances": with_nulls})
        tensor = {"name": "x", "datatype": "FP32", "shape": [20, 3], "data": with_nulls}
        v2 = httpx.post(f"{served.http_url}/v2/models/m/infer", json={"inputs": [tensor]})
    expected = case.model.predict(rows).tolist()
    assert v1.json()["predictions"] == expected and v2.json()["outputs"][0]["data"] == expected
