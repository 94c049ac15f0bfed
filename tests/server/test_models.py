"""Model directories beyond the demo: bare sklearnserver-style files, pipelines with strings,
regressors, broken artifacts, genuine model failures, and the loop staying free during predict."""

import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from model_server.core.artifact import write_metadata
from tests.support.estimators import BlocksUntilFileExists, DropsARowOn13, FailsOnNegative
from tests.support.metrics import scrape, total
from tests.support.servers import SUPPORT_ENV, start_server


def dump(model, directory, filename="model.joblib"):
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, directory / filename)
    return directory


@pytest.mark.parametrize("filename", ["model.joblib", "model.pkl", "model.pickle"])
def test_bare_model_file_serves_like_sklearnserver(tmp_path, filename):
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    model_dir = dump(LogisticRegression().fit(X, y), tmp_path / "m", filename)
    with start_server(model_dir, "bare") as served:
        v1 = httpx.post(f"{served.http_url}/v1/models/bare:predict", json={"instances": [[3, 0, 0], [-3, 0, 0]]})
        assert v1.json() == {"predictions": [1, 0]}
        metadata = httpx.get(f"{served.http_url}/v2/models/bare").json()
        assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}]
        assert metadata["versions"] == ["1"]
        records = httpx.post(f"{served.http_url}/v1/models/bare:predict", json={"instances": [{"a": 1}]})
        assert records.status_code == 400 and "no feature names" in records.json()["error"]


def test_regressor_fitted_on_dataframe(tmp_path):
    frame = pd.DataFrame({"rooms": [1.0, 2, 3, 4], "area": [10.0, 20, 30, 40]})
    model_dir = dump(LinearRegression().fit(frame, frame["area"] * 2), tmp_path / "m")
    with start_server(model_dir, "price") as served:
        response = httpx.post(
            f"{served.http_url}/v1/models/price:predict", json={"instances": [{"area": 50, "rooms": 5}]}
        )
        assert response.status_code == 200
        assert response.json()["predictions"] == pytest.approx([100.0])
        proba = httpx.post(
            f"{served.http_url}/v1/models/price:predict",
            json={"instances": [[1, 2]], "parameters": {"probabilities": True}},
        )
        assert proba.status_code == 400 and "not available" in proba.json()["error"]
        metadata = httpx.get(f"{served.http_url}/v2/models/price").json()
        assert [i["name"] for i in metadata["inputs"]] == ["rooms", "area"]
        assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]


@pytest.fixture(scope="module")
def mixed_pipeline(tmp_path_factory):
    """A pipeline over a string column and a numeric one: V2 needs one tensor per feature."""
    frame = pd.DataFrame({"colour": ["red", "blue", "red", "green"] * 10, "size": np.arange(40.0)})
    y = (frame["colour"] == "red").astype(int)
    pipeline = make_pipeline(
        ColumnTransformer([("c", OneHotEncoder(), ["colour"]), ("n", StandardScaler(), ["size"])]),
        LogisticRegression(),
    ).fit(frame, y)
    model_dir = dump(pipeline, tmp_path_factory.mktemp("mixed"))
    write_metadata(model_dir, version="7", features=[{"name": "colour", "datatype": "BYTES"}, {"name": "size"}])
    with start_server(model_dir, "mixed") as served:
        yield served


def test_mixed_types_over_v1_and_v2(mixed_pipeline):
    url = mixed_pipeline.http_url
    v1 = httpx.post(f"{url}/v1/models/mixed:predict", json={"instances": [["red", 3], ["blue", 4]]})
    assert v1.json() == {"predictions": [1, 0]}
    records = httpx.post(f"{url}/v1/models/mixed:predict", json={"instances": [{"size": 4, "colour": "blue"}]})
    assert records.json() == {"predictions": [0]}
    v2 = httpx.post(
        f"{url}/v2/models/mixed/infer",
        json={
            "inputs": [
                {"name": "colour", "datatype": "BYTES", "shape": [2], "data": ["red", "green"]},
                {"name": "size", "datatype": "FP32", "shape": [2, 1], "data": [1, 2]},
            ]
        },
    )
    assert v2.status_code == 200, v2.text
    assert v2.json()["model_version"] == "7" and v2.json()["outputs"][0]["data"] == [1, 0]
    metadata = httpx.get(f"{url}/v2/models/mixed").json()
    assert metadata["inputs"][0] == {"name": "colour", "datatype": "BYTES", "shape": [-1]}


@pytest.mark.parametrize(
    "body,message",
    [
        ({"instances": [[3, 3]]}, "expected a string"),
        ({"instances": [["red", 3], {"size": 4, "colour": "blue"}]}, "use one form for all instances"),
        ({"instances": [["purple", 3]]}, "the model rejected the input: Found unknown categories"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]}, "are strings"),
        (
            {
                "inputs": [
                    {"name": "colour", "datatype": "BYTES", "shape": [1], "data": ["red"]},
                    {"name": "size", "datatype": "BYTES", "shape": [1], "data": ["3"]},
                ]
            },
            "the feature is numeric",
        ),
    ],
)
def test_mixed_types_client_mistakes(mixed_pipeline, body, message):
    route = "/v1/models/mixed:predict" if "instances" in body else "/v2/models/mixed/infer"
    response = httpx.post(f"{mixed_pipeline.http_url}{route}", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_model_that_accepts_nan(tmp_path):
    X = np.random.default_rng(1).normal(size=(50, 2))
    model_dir = dump(HistGradientBoostingRegressor(max_iter=5).fit(X, X[:, 0]), tmp_path / "m")
    with start_server(model_dir, "hgb") as served:
        ok = httpx.post(f"{served.http_url}/v1/models/hgb:predict", json={"instances": [[None, 1.0]]})
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1


@pytest.mark.parametrize(
    "make_dir,message",
    [
        (lambda d: d, "no model file"),
        (lambda d: (d / "a.pkl").write_bytes(b"x") and (d / "b.joblib").write_bytes(b"y") and d, "several model files"),
        (lambda d: (d / "model.joblib").write_bytes(b"not a pickle") and d, "cannot load"),
        (
            lambda d: (
                dump(LinearRegression().fit([[1], [2]], [1, 2]), d)
                and (d / "metadata.json").write_text(json.dumps({"sha256": "0" * 64}))
                and d
            ),
            "does not match",
        ),
        (
            lambda d: (
                dump(LinearRegression().fit([[1], [2]], [1, 2]), d)
                and (d / "metadata.json").write_text('{"class_label": []}')
                and d
            ),
            "unknown keys",
        ),
        (
            lambda d: (
                dump(LinearRegression().fit([[1], [2]], [1, 2]), d)
                and (d / "metadata.json").write_text('{"sha256": 123}')
                and d
            ),
            "metadata.json: sha256 must be a string of 64 hex digits, got 123",
        ),
        (
            lambda d: (d / "model.joblib").touch() or d,
            "EOFError (the file is truncated or not a pickle)",
        ),
    ],
)
def test_unservable_directory_exits_with_a_clear_error(tmp_path, make_dir, message):
    model_dir = make_dir(tmp_path)
    with pytest.raises(RuntimeError) as error, start_server(model_dir, "broken", timeout=30):
        pass
    assert "server exited with 1" in str(error.value)
    assert message in str(error.value)
    assert "Traceback" not in str(error.value)  # one line, not a stack


def test_model_failure_is_500_logged_and_alone(tmp_path):
    model_dir = dump(FailsOnNegative().fit(np.zeros((1, 2))), tmp_path / "m")
    with start_server(model_dir, "fragile", env=SUPPORT_ENV) as served:
        url = f"{served.http_url}/v1/models/fragile:predict"
        bad = httpx.post(url, json={"instances": [[-5, -5]]})
        assert bad.status_code == 500
        assert "RuntimeError: simulated model failure" in bad.json()["error"]
        assert "Traceback" in served.log() and "simulated model failure" in served.log()
        # Concurrent good requests may share a batch with the failing one: they must still succeed.
        with ThreadPoolExecutor(16) as pool:
            bodies = [[[-5, -5]] if i % 4 == 0 else [[1, 1]] for i in range(64)]
            responses = list(pool.map(lambda rows: httpx.post(url, json={"instances": rows}, timeout=30), bodies))
        for rows, response in zip(bodies, responses, strict=True):
            assert response.status_code == (500 if rows[0][0] < 0 else 200)
        assert httpx.post(url, json={"instances": [[1, 1]]}).json() == {"predictions": [1]}
        # Over gRPC the same failure is INTERNAL, not a client error.
        tensor = pb.ModelInferRequest.InferInputTensor(
            name="x", datatype="FP64", shape=[1, 2], contents=pb.InferTensorContents(fp64_contents=[-5, -5])
        )
        with grpc.insecure_channel(served.grpc_target) as channel, pytest.raises(grpc.RpcError) as error:
            GRPCInferenceServiceStub(channel).ModelInfer(pb.ModelInferRequest(model_name="fragile", inputs=[tensor]))
        assert error.value.code() == grpc.StatusCode.INTERNAL
        assert "simulated model failure" in error.value.details()


def test_wrong_length_result_is_500_for_that_request_alone(tmp_path):
    model_dir = dump(DropsARowOn13().fit(np.zeros((1, 2))), tmp_path / "m")
    with start_server(model_dir, "short", "--max_batch_wait_ms=5", env=SUPPORT_ENV) as served:
        url = f"{served.http_url}/v1/models/short:predict"
        bad = httpx.post(url, json={"instances": [[13, 0], [1, 1], [2, 2]]})
        assert bad.status_code == 500
        assert "the model returned 2 predict values for 3 rows" in bad.json()["error"]
        # Batched with the bad one, good requests must get their own rows' answers, never a shifted slice.
        bodies = [[[13, 0]] if i % 8 == 0 else [[i, 0], [i, 1]] for i in range(64)]
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda rows: httpx.post(url, json={"instances": rows}, timeout=30), bodies))
        for rows, response in zip(bodies, responses, strict=True):
            if rows[0][0] == 13:
                assert response.status_code == 500
            else:
                assert response.status_code == 200 and response.json() == {"predictions": [1, 1]}


def test_predict_runs_off_the_event_loop(tmp_path):
    release = tmp_path / "release"
    model_dir = dump(BlocksUntilFileExists(str(release)).fit(np.zeros((1, 2))), tmp_path / "m")
    with start_server(model_dir, "slow", env=SUPPORT_ENV) as served:
        done = threading.Event()
        result = {}

        def slow_request():
            result["response"] = httpx.post(
                f"{served.http_url}/v1/models/slow:predict", json={"instances": [[1, 0]]}, timeout=60
            )
            done.set()

        threading.Thread(target=slow_request).start()
        try:
            # While predict blocks in its thread, the server still answers other requests.
            for _ in range(5):
                assert httpx.get(f"{served.http_url}/v2/health/live", timeout=5).status_code == 200
                assert httpx.get(f"{served.http_url}/v2/models/slow", timeout=5).status_code == 200
            assert not done.is_set()
        finally:
            release.touch()
        assert done.wait(30) and result["response"].json() == {"predictions": [0]}


@pytest.mark.parametrize(
    "args,env", [(("--max_request_bytes=1000",), {}), ((), {"MODEL_SERVER_MAX_REQUEST_BYTES": "1000"})]
)
def test_request_size_limit_is_413_configurable_and_counted(demo_model_dir, args, env):
    with start_server(demo_model_dir, "iris", *args, env=env) as served:
        url = f"{served.http_url}/v1/models/iris:predict"
        big = {"instances": [[5.1, 3.5, 1.4, 0.2]] * 100}
        response = httpx.post(url, json=big)
        assert response.status_code == 413 and "1000 bytes" in response.json()["error"]
        # Chunked bodies have no content-length: the limit holds while reading.
        chunked = httpx.post(url, content=iter([b'{"instances": [', b"[1,2,3,4]," * 200, b"[1,2,3,4]]}"]))
        assert chunked.status_code == 413
        assert httpx.post(url, json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).json() == {"predictions": [0]}
        counted = total(scrape(served.http_url), "model_server_requests_total", code="413", protocol="v1")
        assert counted == 2


def test_readiness_follows_the_model(demo_model_dir):
    with start_server(demo_model_dir, "iris", "--repository_api=true") as served:
        url = served.http_url
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        assert httpx.post(f"{url}/v2/repository/models/iris/unload").status_code == 200
        # Stock KServe keeps saying ready with no model loaded.
        assert httpx.get(f"{url}/v2/health/ready").status_code == 503
        assert httpx.get(f"{url}/v2/models/iris/ready").status_code in (404, 503)
        assert httpx.post(f"{url}/v1/models/iris:predict", json={"instances": [[1, 2, 3, 4]]}).status_code in (404, 503)


def test_cli_help_and_unusable_workers():
    help_text = subprocess.run([sys.executable, "-m", "model_server", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0
    for flag in (
        "--model_dir",
        "--max_batch_size",
        "--max_batch_wait_ms",
        "--max_request_bytes",
        "--backend",
        "--access_log",
        "--http_port",
        "--grpc_port",
        "--workers",
        "--enable_latency_logging",
    ):
        assert flag in help_text.stdout
    workers = subprocess.run([sys.executable, "-m", "model_server", "--workers=0"], capture_output=True, text=True)
    assert workers.returncode == 2 and "--workers must be at least 1, got 0" in workers.stderr


@pytest.mark.parametrize("flags, logged", [((), False), (("--access_log=true",), True)], ids=["default", "asked"])
def test_access_log_lines_only_when_asked(demo_model_dir, flags, logged):
    with start_server(demo_model_dir, "iris", *flags) as served:
        for _ in range(3):
            httpx.post(f"{served.http_url}/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        httpx.get(f"{served.http_url}/v2/models/iris")
        log = served.log()
    # Our route; some uvicorn versions log the path quoted (%3A), others as sent.
    assert bool(re.search(r'"POST /v1/models/iris(:|%3A)predict HTTP/1.1" 200', log)) is logged
    assert ('"GET /v2/models/iris HTTP/1.1" 200' in log) is logged  # KServe's
    assert "Deprecation" not in log  # KServe's ORJSONResponse warning is not the user's business
