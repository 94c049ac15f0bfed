"""--onnx_cache_dir: a forest converted once is read back at the next start, without importing the
converter, and a damaged or foreign graph in the cache is converted again, never served."""

import json
import subprocess
import sys

import joblib
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from tests.support.tools import REPO

# A fresh interpreter per start, as a server's: what it imports is what a start needs.
START = """
import json, sys
from model_server.core.settings import ModelSettings
predictor = ModelSettings(onnx_cache_dir=sys.argv[2]).load_predictor(sys.argv[1])
twin = getattr(predictor.engine, "twin", predictor.engine)  # a forest takes NaN: NanToEstimator wraps it
rows = [[0.5 * i for i in range(8)], [1.0] * 8]
print(json.dumps({
    "engine": type(twin).__name__,
    "from_cache": getattr(twin, "from_cache", None),
    "converter_imported": "skl2onnx" in sys.modules,
    "labels": predictor.engine.predict(rows).tolist(),
}))
"""


@pytest.fixture(scope="module")
def forest_dir(tmp_path_factory):
    X, y = make_classification(n_samples=300, n_features=8, random_state=0)
    model_dir = tmp_path_factory.mktemp("forest")
    joblib.dump(RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y), model_dir / "model.joblib")
    return model_dir


def start(model_dir, cache_dir) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", START, str(model_dir), str(cache_dir)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


def test_the_second_start_reads_the_graph_and_imports_no_converter(forest_dir, tmp_path):
    cache = tmp_path / "cache"
    cold = start(forest_dir, cache)
    assert cold["engine"] == "OnnxEngine" and cold["from_cache"] is False and cold["converter_imported"]
    (graph,) = cache.glob("*.onnx")
    assert graph.name.endswith("-8.onnx") and graph.stat().st_size > 0
    warm = start(forest_dir, cache)
    assert warm == {**cold, "from_cache": True, "converter_imported": False}


@pytest.mark.parametrize("damage", ["garbage", "another model's graph"])
def test_a_graph_that_is_not_this_model_s_is_converted_again(forest_dir, tmp_path, damage):
    cache = tmp_path / "cache"
    start(forest_dir, cache)
    (graph,) = cache.glob("*.onnx")
    if damage == "garbage":
        graph.write_bytes(b"not an onnx graph")
    else:  # a graph of another forest of the same width: it loads, but fails the parity check
        X, y = make_classification(n_samples=300, n_features=8, random_state=1)
        other = tmp_path / "other"
        other.mkdir()
        joblib.dump(RandomForestClassifier(n_estimators=3, random_state=1).fit(X, y), other / "model.joblib")
        other_cache = tmp_path / "other-cache"
        start(other, other_cache)
        graph.write_bytes(next(other_cache.glob("*.onnx")).read_bytes())
    again = start(forest_dir, cache)
    assert again["engine"] == "OnnxEngine" and again["from_cache"] is False
    assert start(forest_dir, cache)["from_cache"] is True  # rewritten with the right graph
