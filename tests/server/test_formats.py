"""Model formats through the real server: MLflow models and skops served as they are (and mlflow
never imported), pickles pinned or refused under --require_sha256, malicious files never run."""

import json
import os
import shutil
import subprocess
import sys

import httpx
import joblib
import numpy as np
import pytest
import skops.io
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from model_server.core.artifact import write_metadata
from tests.support import malicious
from tests.support.estimators import FailsOnNegative
from tests.support.model_formats import mixed_frame, train_mixed, write_mlflow_shim
from tests.support.servers import start_server

STRICT = "--require_sha256=true"
X = np.random.default_rng(1).normal(size=(40, 3))
Y = (X[:, 0] > 0).astype(int)


def pickled(directory, pinned=False):
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression().fit(X, Y), directory / "model.joblib")
    if pinned:
        write_metadata(directory)
    return directory


def skops_model(directory, model, **metadata):
    directory.mkdir(parents=True, exist_ok=True)
    skops.io.dump(model, directory / "model.skops")
    if metadata:
        (directory / "metadata.json").write_text(json.dumps(metadata))
    return directory


def cve_skops(directory, marker):
    """The CVE-2025-54412 file, with metadata.json trusting what skops < 0.12 showed of it."""
    malicious.write_skops_cve_2025_54412(directory / "model.skops", marker)
    (directory / "metadata.json").write_text(json.dumps({"skops_trusted_types": malicious.CVE_2025_54412_SHOWN_TYPES}))
    return directory


def mixed_v2_request(frame):
    return {
        "inputs": [
            {"name": "colour", "datatype": "BYTES", "shape": [len(frame)], "data": frame["colour"].tolist()},
            {"name": "size", "datatype": "FP64", "shape": [len(frame)], "data": frame["size"].tolist()},
            {"name": "count", "datatype": "INT64", "shape": [len(frame)], "data": frame["count"].tolist()},
        ]
    }


@pytest.fixture
def mlflow_shim(tmp_path):
    """PYTHONPATH for a process that must not import mlflow, and the file that tells if it did."""
    marker = tmp_path / "mlflow-imported"
    return {"PYTHONPATH": str(write_mlflow_shim(tmp_path / "shim", marker))}, marker


def test_the_mlflow_shim_sees_an_import(mlflow_shim):
    env, marker = mlflow_shim
    result = subprocess.run(
        [sys.executable, "-c", "import mlflow"], env={**os.environ, **env}, capture_output=True, text=True
    )
    assert result.returncode == 1 and "this process must not import mlflow" in result.stderr
    assert marker.read_text() == "mlflow imported\n"


def test_every_format_serves_as_it_is_and_require_sha256_refuses_what_nobody_pinned(
    tmp_path, mlflow_models, mlflow_shim
):
    env, mlflow_imported = mlflow_shim
    ran = tmp_path / "pwned"
    root = tmp_path / "models"
    for serialization, source in mlflow_models.items():
        shutil.copytree(source, root / f"mlflow-{serialization}")
    for serialization in ("pickle", "cloudpickle"):
        write_metadata(root / f"mlflow-{serialization}")  # pickles must be pinned; skops need not
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y)
    skops_model(root / "forest", forest, skops_trusted_types=["sklearn.tree._tree.Tree"])
    skops_model(root / "custom", FailsOnNegative().fit(X))
    pickled(root / "pinned", pinned=True)
    pickled(root / "unpinned")
    malicious.write_pickle(root / "trap" / "model.pkl", ran)

    with start_server(root, "unused", f"--model_repository={root}", STRICT, env=env) as served:
        url = served.http_url
        index = {e["name"]: (e["state"], e.get("reason", "")) for e in httpx.post(f"{url}/v2/repository/index").json()}
        ready = {"mlflow-pickle", "mlflow-cloudpickle", "mlflow-skops", "forest", "pinned"}
        assert {name for name, (state, _) in index.items() if state == "READY"} == ready
        assert "untrusted types ['tests.support.estimators.FailsOnNegative']" in index["custom"][1]
        for refused in ("unpinned", "trap"):
            assert "unpinned pickle file, refused unread (--require_sha256)" in index[refused][1]

        frame, _ = mixed_frame()
        frame = frame.head(12)
        expected = train_mixed().predict(frame).tolist()
        for serialization in mlflow_models:
            name = f"mlflow-{serialization}"
            metadata = httpx.get(f"{url}/v2/models/{name}").json()
            assert metadata["inputs"] == [
                {"name": "colour", "datatype": "BYTES", "shape": [-1]},
                {"name": "size", "datatype": "FP64", "shape": [-1]},
                {"name": "count", "datatype": "INT64", "shape": [-1]},
            ]
            v2 = httpx.post(f"{url}/v2/models/{name}/infer", json=mixed_v2_request(frame))
            assert v2.status_code == 200, v2.text
            assert v2.json()["outputs"][0]["data"] == expected
            v1 = httpx.post(f"{url}/v1/models/{name}:predict", json={"instances": frame.to_dict("records")})
            assert v1.json() == {"predictions": expected}
            wrong = httpx.post(
                f"{url}/v1/models/{name}:predict", json={"instances": [{"colour": 3, "size": 1, "count": 2}]}
            )
            assert wrong.status_code == 400 and "feature 'colour'" in wrong.json()["error"]

        rows = X[:5].tolist()
        assert httpx.post(f"{url}/v1/models/forest:predict", json={"instances": rows}).json() == {
            "predictions": forest.predict(X[:5]).tolist()
        }
        # The repository API refuses what start refuses, with the same reason, and runs none of it.
        cve_skops(root / "cve", ran)
        refused = httpx.post(f"{url}/v2/repository/models/cve/load")
        assert refused.status_code == 400
        assert "Expected module 'operator', got sklearn.linear_model._stochastic_gradient" in refused.json()["error"]
        log = served.log()
    assert not ran.exists(), "a malicious model ran"
    assert not mlflow_imported.exists(), "the server imported mlflow"
    assert "Traceback" not in log
    assert "runs any code it holds" not in log  # no unpinned pickle was loaded, so none warned of


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda d, ran: pickled(d), "model.joblib: an unpinned pickle file, refused unread (--require_sha256)"),
        (lambda d, ran: malicious.write_pickle(d / "model.pkl", ran), "an unpinned pickle file, refused unread"),
        (lambda d, ran: cve_skops(d, ran), "Expected module 'operator', got sklearn.linear_model"),
        (
            lambda d, ran: skops_model(d, FailsOnNegative().fit(X)),
            "untrusted types ['tests.support.estimators.FailsOnNegative']",
        ),
    ],
    ids=["unpinned-pickle", "malicious-pickle", "cve-2025-54412-skops", "untrusted-skops"],
)
def test_refused_at_start_with_one_line_and_nothing_run(tmp_path, make, reason):
    ran = tmp_path / "pwned"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    make(model_dir, ran)
    with pytest.raises(RuntimeError) as error, start_server(model_dir, "strict", STRICT, timeout=60):
        pass
    assert "server exited with 1" in str(error.value)
    assert reason in str(error.value)
    assert "Traceback" not in str(error.value)
    assert not ran.exists()


@pytest.mark.parametrize(
    "front_end",
    [
        [
            "model_server.stream",
            "--input_topic=requests",
            "--output_topic=responses",
            "--bootstrap_servers=127.0.0.1:1",
        ],
        ["model_server.edge", "--http_port=0"],
        ["model_server.batch", "--input={tmp}/rows.csv", "--output={tmp}/scores"],
    ],
    ids=["stream", "edge", "batch"],
)
def test_the_other_front_ends_refuse_an_unpinned_pickle_too(tmp_path, front_end):
    """Every front end loads through the same loader: the Kafka consumer stops before it connects,
    the edge runtime before it listens, the batch command before it writes a row."""
    module, *args = front_end
    model_dir = pickled(tmp_path / "model")
    (tmp_path / "rows.csv").write_text("a,b,c,d\n5.1,3.5,1.4,0.2\n")
    args = [arg.format(tmp=tmp_path) for arg in args]
    result = subprocess.run(
        [sys.executable, "-m", module, f"--model_dir={model_dir}", STRICT, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "model.joblib: an unpinned pickle file, refused unread (--require_sha256)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "scores").exists()


def test_mlflow_pickle_unpinned_is_refused_at_start(tmp_path, mlflow_models):
    model_dir = shutil.copytree(mlflow_models["cloudpickle"], tmp_path / "model")
    with pytest.raises(RuntimeError) as error, start_server(model_dir, "strict", STRICT, timeout=60):
        pass
    assert "model.pkl: an unpinned MLflow cloudpickle file, refused unread (--require_sha256)" in str(error.value)


def test_without_require_sha256_a_pickle_loads_as_on_sklearnserver_with_one_warning(tmp_path):
    """What --require_sha256 is for: by default, as KServe's sklearnserver does, an unpinned pickle
    is loaded, and whatever code it holds runs; the log says so once and says how to pin it."""
    ran = tmp_path / "pwned"
    model_dir = tmp_path / "model"
    malicious.write_pickle(model_dir / "model.pkl", ran)
    with start_server(model_dir, "trusting") as served:
        answer = httpx.post(f"{served.http_url}/v1/models/trusting:predict", json={"instances": [[1.0, 1.0]]})
        assert answer.json() == {"predictions": [0]}  # its DummyClassifier's answer
        log = served.log()
    assert ran.read_text() == "pwned"
    warnings = [line for line in log.splitlines() if "an unpinned pickle file" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert "write_metadata" in warnings[0] and "--require_sha256" in warnings[0]
