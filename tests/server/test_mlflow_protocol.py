"""MLflow's scoring protocol (POST /invocations, /ping, /version), against the real server, with
MLflow's own client and pandas payloads, side by side with a real ``mlflow models serve
--env-manager local`` on the same model in the same test: answers compared field by field.

What differs on purpose (docs/mlflow.md) is asserted as such in ``test_differences_on_purpose``
and ``test_ping_answers_503_while_draining``. MLflow's server needs full MLflow (not the
mlflow-skinny the tests use): it is installed into its own venv (benchmarks/mlflow_env.py), and
these tests skip, naming it, when that cannot be done.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from benchmarks import mlflow_env
from model_server import server_version
from tests.support.mlflow_models import iris_frame, multi_output_frame, write_models
from tests.support.model_formats import mixed_frame
from tests.support.servers import free_port, start_server, stop, wait_until_ready

scoring_client = pytest.importorskip("mlflow.pyfunc.scoring_server.client", reason="needs mlflow-skinny (tests extra)")

JSON = "application/json"
# The first rows each model is asked about (a row per class or range of values).
FRAMES = {
    "mixed": lambda: mixed_frame()[0].head(5),
    "pickle": lambda: iris_frame()[0].iloc[[0, 1, 50, 100, 149]].reset_index(drop=True),
    "multi_output": lambda: multi_output_frame()[0].head(4),
    "proba_params": lambda: iris_frame()[0].iloc[[0, 50, 100]].reset_index(drop=True),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_models(tmp_path_factory.mktemp("mlflow-protocol"))


@pytest.fixture(scope="module")
def mlflow_bin():
    try:
        return mlflow_env.ensure_mlflow()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"full MLflow {mlflow_env.MLFLOW_VERSION} could not be installed into {mlflow_env.VENV_DIR}: {exc}")


@pytest.fixture(scope="module")
def mlflow2_python():
    try:
        return mlflow_env.ensure_mlflow2_client()
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(
            f"mlflow-skinny {mlflow_env.MLFLOW2_CLIENT_VERSION} (an MLflow 2 client) could not be installed: {exc}"
        )


# Run by MLflow 2's Python: a DataFrame (orient="split" JSON in argv) sent by its ScoringServerClient.
MLFLOW2_CLIENT = """
import json, sys
import mlflow, pandas as pd
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
assert mlflow.__version__.startswith("2."), mlflow.__version__
frame = pd.read_json(sys.argv[3], orient="split")
client = ScoringServerClient("127.0.0.1", int(sys.argv[1]))
client.wait_server_ready(timeout=10)
predictions = client.invoke(frame).get_predictions(predictions_format="ndarray")
with_params = sys.argv[2] == "params" and client.invoke(frame, params={"temperature": 0.5})
print(json.dumps(predictions.tolist()))
"""


@contextmanager
def mlflow_serve(mlflow_bin: Path, model_dir: Path, timeout: float = 180):
    """``mlflow models serve --env-manager local`` on a free port until the block ends."""
    port = free_port()
    log_path = Path(tempfile.mkstemp(prefix="mlflow-serve-", suffix=".log")[1])
    env = {**os.environ, "PATH": f"{mlflow_bin.parent}:{os.environ['PATH']}"}  # its uvicorn
    command = [str(mlflow_bin), "models", "serve", "-m", str(model_dir), "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url, exited(process, "mlflow models serve"), log_path.read_text, timeout, path="/ping")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # mlflow runs uvicorn as a child process
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def exited(process: subprocess.Popen, what: str):
    """For wait_until_ready: why the process is gone, or False while it runs."""
    return lambda: process.poll() is not None and f"{what} exited with {process.returncode}"


def invocations(url: str, body, content_type: str | None = JSON) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(f"{url}/invocations", content=content, headers=headers, timeout=30)


def payloads(frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The same rows in every form a pandas user sends them: {form: (content type, body)}."""
    return {
        "split": (JSON, '{"dataframe_split": ' + frame.to_json(orient="split") + "}"),
        "records": (JSON, '{"dataframe_records": ' + frame.to_json(orient="records") + "}"),
        "csv": ("text/csv", frame.to_csv(index=False)),
        "csv_charset": ("text/csv; charset=utf-8", frame.to_csv(index=False)),
        "instances_records": (JSON, json.dumps({"instances": frame.to_dict(orient="records")})),
        "inputs_columns": (JSON, json.dumps({"inputs": frame.to_dict(orient="list")})),
        "extra_column": (JSON, json.dumps({"dataframe_records": frame.assign(label=1).to_dict(orient="records")})),
    }


def bad_payloads(frame: pd.DataFrame) -> dict[str, tuple[str, object]]:
    """Mistakes both servers refuse with the same status: {case: (content type, body)}."""
    records = frame.to_dict(orient="records")
    first, numeric = frame.columns[0], next(c for c in frame.columns if frame[c].dtype.kind in "if")
    return {
        "two_keys": (JSON, {"dataframe_records": records, "instances": records}),
        "no_key": (JSON, {"rows": records}),
        "top_level_list": (JSON, records),
        "not_json": (JSON, "{not json"),
        "missing_column": (JSON, {"dataframe_records": frame.drop(columns=[first]).to_dict(orient="records")}),
        "string_for_number": (JSON, {"dataframe_records": frame.assign(**{numeric: "x"}).to_dict(orient="records")}),
        "null_number": (JSON, {"dataframe_split": {"columns": list(frame.columns), "data": [[None] * frame.shape[1]]}}),
        "text_plain": ("text/plain", "a,b\n1,2\n"),
        "latin1": ("application/json; charset=latin-1", {"dataframe_records": records}),
        "content_type_parameter": ("application/json; format=pandas-split", {"dataframe_records": records}),
    }


def assert_same_predictions(ours, theirs) -> None:
    """Labels and integers exactly; floats to the last bits the two code paths may differ in."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    if ours.dtype.kind == "f" or theirs.dtype.kind == "f":
        np.testing.assert_allclose(ours.astype(float), theirs.astype(float), rtol=1e-9, atol=1e-12)
    else:
        assert ours.tolist() == theirs.tolist()


def v1_v2_predictions(served, frame: pd.DataFrame, output: str) -> tuple[list, list]:
    """The same rows' answers over V1 (records) and V2 (one tensor per column)."""
    name = served.model_name
    v1_body = {"instances": frame.to_dict(orient="records")}
    if output == "predict_proba":
        v1_body["parameters"] = {"probabilities": True}
    v1 = httpx.post(f"{served.http_url}/v1/models/{name}:predict", json=v1_body, timeout=30)
    assert v1.status_code == 200, v1.text
    v1_answer = v1.json()["probabilities" if output == "predict_proba" else "predictions"]
    inputs = []
    for column in frame.columns:
        values = frame[column].tolist()
        datatype = "BYTES" if frame[column].dtype == object else "FP64"
        inputs.append({"name": column, "datatype": datatype, "shape": [len(values)], "data": values})
    v2 = httpx.post(
        f"{served.http_url}/v2/models/{name}/infer", json={"inputs": inputs, "outputs": [{"name": output}]}, timeout=30
    )
    assert v2.status_code == 200, v2.text
    (out,) = v2.json()["outputs"]
    return v1_answer, np.reshape(out["data"], out["shape"]).tolist()


@pytest.mark.parametrize("model", list(FRAMES))
def test_answers_equal_mlflow_models_serve(models, mlflow_bin, model):
    ours_dir, mlflow_dir = models[model]
    frame = FRAMES[model]()
    with start_server(ours_dir, model) as served, mlflow_serve(mlflow_bin, mlflow_dir) as reference:
        answers = {}
        for form, (content_type, body) in payloads(frame).items():
            mine, theirs = invocations(served.http_url, body, content_type), invocations(reference, body, content_type)
            assert (form, mine.status_code) == (form, theirs.status_code), (mine.text, theirs.text)
            assert mine.status_code == 200, mine.text
            assert mine.headers["content-type"] == theirs.headers["content-type"] == JSON
            mine_doc, theirs_doc = mine.json(), theirs.json()
            assert mine_doc.keys() == theirs_doc.keys() == {"predictions"}
            assert_same_predictions(mine_doc["predictions"], theirs_doc["predictions"])
            answers[form] = mine_doc["predictions"]

        # MLflow's own client, a DataFrame in (it sends dataframe_split), a PredictionsResponse out.
        for url in (served.http_url, reference):
            client = scoring_client.ScoringServerClient("127.0.0.1", httpx.URL(url).port)
            client.wait_server_ready(timeout=10)
            predictions = client.invoke(frame).get_predictions(predictions_format="ndarray")
            assert_same_predictions(predictions, answers["split"])

        for case, (content_type, body) in bad_payloads(frame).items():
            mine, theirs = invocations(served.http_url, body, content_type), invocations(reference, body, content_type)
            assert (case, mine.status_code) == (case, theirs.status_code), (mine.text, theirs.text)
            assert mine.headers["content-type"].split(";")[0] == theirs.headers["content-type"].split(";")[0]
            if mine.status_code == 415:  # plain text, as MLflow's
                assert mine.text and theirs.text
            else:
                assert mine.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
                assert theirs.json()["error_code"] in ("BAD_REQUEST", "INVALID_PARAMETER_VALUE")
                assert mine.json()["message"]

        # One code path: V1 and V2 answer what /invocations answers.
        output = "predict_proba" if model == "proba_params" else "predict"
        v1, v2 = v1_v2_predictions(served, frame, output)
        assert_same_predictions(v1, answers["split"])
        assert_same_predictions(v2, answers["split"])


@pytest.mark.parametrize("model", ["mixed", "proba_params"])
def test_an_mlflow_2_client(models, mlflow2_python, model):
    """MLflow 2.x's ScoringServerClient (what many teams' jobs still run) against the server."""
    ours_dir, _ = models[model]
    frame = FRAMES[model]()
    with start_server(ours_dir, model) as served:
        port = str(httpx.URL(served.http_url).port)
        params = "params" if model == "proba_params" else "none"
        done = subprocess.run(
            [str(mlflow2_python), "-c", MLFLOW2_CLIENT, port, params, frame.to_json(orient="split")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        expected = invocations(served.http_url, {"dataframe_split": frame.to_dict(orient="split")}).json()
    assert_same_predictions(json.loads(done.stdout.strip().splitlines()[-1]), expected["predictions"])


def test_error_messages_name_the_problem(models):
    ours_dir, _ = models["mixed"]
    frame = FRAMES["mixed"]()
    with start_server(ours_dir, "mixed") as served:
        cases = bad_payloads(frame)
        said = {case: invocations(served.http_url, body, ct).text for case, (ct, body) in cases.items()}
    assert "exactly one of the input fields" in said["two_keys"] and "instances" in said["two_keys"]
    assert "Received a list" in said["top_level_list"]
    assert "missing ['colour']" in said["missing_column"]
    assert "column 'size': expected a number, got str 'x'" in said["string_for_number"]
    assert "UTF-8" in said["latin1"]
    assert "format" in said["content_type_parameter"]
    assert "text/plain" in said["text_plain"]


def test_differences_on_purpose(models, mlflow_bin):
    """What docs/mlflow.md lists as different from ``mlflow models serve``, asserted as such."""
    ours_dir, mlflow_dir = models["mixed"]
    frame = FRAMES["mixed"]()
    records = {"dataframe_records": frame.to_dict(orient="records")}
    with start_server(ours_dir, "mixed") as served, mlflow_serve(mlflow_bin, mlflow_dir) as reference:
        # Params the signature does not declare: a 400 naming them here, ignored (a log line) there.
        mine = invocations(served.http_url, {**records, "params": {"temperature": 2}})
        theirs = invocations(reference, {**records, "params": {"temperature": 2}})
        assert mine.status_code == 400 and "['temperature']" in mine.json()["message"]
        assert theirs.status_code == 200
        # No Content-Type: 415 here, a 500 there.
        mine, theirs = invocations(served.http_url, "{}", None), invocations(reference, "{}", None)
        assert (mine.status_code, theirs.status_code) == (415, 500)
        # Rows without column names for a model with named columns: positional here (as V1's
        # instances are), refused there.
        rows = {"instances": frame.to_numpy().tolist()}
        mine, theirs = invocations(served.http_url, rows), invocations(reference, rows)
        assert (mine.status_code, theirs.status_code) == (200, 400)
        assert mine.json() == invocations(served.http_url, records).json()
        # /ping: an empty body (SageMaker's contract), MLflow's is a newline; both 200 when ready.
        mine, theirs = httpx.get(f"{served.http_url}/ping"), httpx.get(f"{reference}/ping")
        assert (mine.status_code, mine.content) == (200, b"")
        assert (theirs.status_code, theirs.content) == (200, b"\n")
        assert httpx.get(f"{served.http_url}/health").status_code == 200
        # /version: this server's version, MLflow's is MLflow's; both the bare string.
        assert httpx.get(f"{served.http_url}/version").text == server_version()
        assert httpx.get(f"{reference}/version").text == mlflow_env.MLFLOW_VERSION


def test_declared_params_are_accepted(models):
    ours_dir, _ = models["proba_params"]
    frame = FRAMES["proba_params"]()
    body = {"dataframe_split": frame.to_dict(orient="split")}
    with start_server(ours_dir, "iris") as served:
        plain = invocations(served.http_url, body)
        declared = invocations(served.http_url, {**body, "params": {"temperature": 0.5}})
        unknown = invocations(served.http_url, {**body, "params": {"temperature": 0.5, "top_k": 3}})
    assert plain.status_code == declared.status_code == 200
    assert declared.json() == plain.json()  # the scikit-learn flavor takes no params: nothing changes
    assert np.asarray(plain.json()["predictions"]).shape == (3, 3)  # predict_fn: predict_proba
    assert unknown.status_code == 400
    assert "['top_k']" in unknown.json()["message"] and "['temperature']" in unknown.json()["message"]


def test_ping_answers_503_while_draining(models):
    """SIGTERM: /ping says not-ready at once while /invocations is still answered (MLflow's server
    has no drain: its /ping answers 200 until the process is gone)."""
    ours_dir, _ = models["pickle"]
    body = {"dataframe_split": FRAMES["pickle"]().to_dict(orient="split")}
    with start_server(ours_dir, "iris", env={"MODEL_SERVER_DRAIN_SECONDS": "5"}) as served:
        assert httpx.get(f"{served.http_url}/ping").status_code == 200
        served.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while (ping := httpx.get(f"{served.http_url}/ping")).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ping.status_code == 503
        assert ping.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert invocations(served.http_url, body).status_code == 200


def test_invocations_are_counted_as_mlflow(models):
    from prometheus_client.parser import text_string_to_metric_families

    ours_dir, _ = models["pickle"]
    body = {"dataframe_split": FRAMES["pickle"]().to_dict(orient="split")}
    with start_server(ours_dir, "iris") as served:
        for _ in range(3):
            invocations(served.http_url, body)
        invocations(served.http_url, {"rows": []})
        metrics = httpx.get(f"{served.http_url}/metrics").text
    counts = {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "model_server_requests_total" and sample.labels["protocol"] == "mlflow"
    }
    assert counts == {"200": 3.0, "400": 1.0}


def test_protocols_switch(models):
    ours_dir, _ = models["pickle"]
    frame = FRAMES["pickle"]()
    body = {"dataframe_split": frame.to_dict(orient="split")}
    v1_body = {"instances": frame.to_dict(orient="records")}
    with start_server(ours_dir, "iris", "--protocols", "v1,v2") as served:
        off = invocations(served.http_url, body)
        assert off.status_code == 404 and "--protocols v1,v2" in off.text
        assert httpx.get(f"{served.http_url}/ping").status_code == 404
        assert httpx.post(f"{served.http_url}/v1/models/iris:predict", json=v1_body).status_code == 200
    with start_server(ours_dir, "iris", "--protocols=mlflow") as served:
        assert invocations(served.http_url, body).status_code == 200
        assert httpx.get(f"{served.http_url}/ping").status_code == 200
        v1 = httpx.post(f"{served.http_url}/v1/models/iris:predict", json=v1_body)
        assert v1.status_code == 404 and "the v1 protocol is not served" in v1.text
        assert httpx.get(f"{served.http_url}/v2/models/iris").status_code == 404
        assert httpx.get(f"{served.http_url}/v2/health/ready").status_code == 200  # probes keep working


def test_serve_as_sagemaker_runs_it(models, tmp_path):
    """``python -m model_server serve``: the port from SAGEMAKER_BIND_TO_PORT, /ping, /invocations
    in JSON and CSV, /execution-parameters. (The image itself: tests/container/test_sagemaker.py.)"""
    ours_dir, _ = models["pickle"]
    port = free_port()
    env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port), "MODEL_SERVER_DRAIN_SECONDS": "0"}
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "model_server", "serve", f"--model_dir={ours_dir}"]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(
            url, exited(process, "model_server serve"), (tmp_path / "serve.log").read_text, 60, path="/ping"
        )
        frame = FRAMES["pickle"]()
        by_json = invocations(url, {"dataframe_split": frame.to_dict(orient="split")})
        by_csv = invocations(url, frame.to_csv(index=False), "text/csv")
        assert by_json.status_code == by_csv.status_code == 200
        assert by_json.json() == by_csv.json() and by_json.json()["predictions"] == [0, 0, 1, 2, 2]
        parameters = httpx.get(f"{url}/execution-parameters").json()
        assert parameters["BatchStrategy"] == "MULTI_RECORD"
        assert parameters["MaxPayloadInMB"] == 16 and parameters["MaxConcurrentTransforms"] >= 1
    finally:
        stop(process)
        log.close()
