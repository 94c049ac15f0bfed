"""The image run as SageMaker runs a hosting container: ``docker run <image> serve`` with the model
at /opt/ml/model, port 8080 (or SAGEMAKER_BIND_TO_PORT), GET /ping, POST /invocations in JSON and
CSV, GET /execution-parameters, SIGTERM. We cannot call AWS from here: the contract is checked
against the image under the real engine, as SageMaker would run it (docs/sagemaker.md)."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from model_server.demo import train

from .container_engine import running_container, write_demo_model

pytestmark = pytest.mark.timeout(1800)  # the first test may build the image (a few minutes, cold)

IRIS = load_iris()
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]  # the demo model's features
FRAME = pd.DataFrame(IRIS.data[[0, 50, 100]], columns=COLUMNS)
JSON = "application/json"


@pytest.fixture(scope="module")
def model_dir(engine, image, tmp_path_factory):
    """The demo model v1, as a SageMaker model archive holds it."""
    directory = tmp_path_factory.mktemp("sagemaker") / "model"
    directory.mkdir()
    return write_demo_model(engine, image, directory)


def test_serve_with_the_model_in_opt_ml_model(engine, image, model_dir):
    expected = train(1).predict(FRAME.to_numpy()).tolist()
    mount = ("--volume", f"{model_dir}:/opt/ml/model:ro")
    with running_container(engine, image, "serve", run_args=mount) as container:
        url = container.http_url
        started = time.monotonic()
        ping = httpx.get(f"{url}/ping", timeout=2)
        assert (ping.status_code, ping.content) == (200, b"")
        assert time.monotonic() - started < 2  # SageMaker's limit for a /ping answer
        by_json = httpx.post(
            f"{url}/invocations",
            content='{"dataframe_split": ' + FRAME.to_json(orient="split") + "}",
            headers={"content-type": JSON},
            timeout=30,
        )
        by_csv = httpx.post(
            f"{url}/invocations", content=FRAME.to_csv(index=False), headers={"content-type": "text/csv"}, timeout=30
        )
        assert by_json.status_code == by_csv.status_code == 200, (by_json.text, by_csv.text)
        assert by_json.json() == by_csv.json() == {"predictions": expected}
        refused = httpx.post(f"{url}/invocations", content="x", headers={"content-type": "text/plain"}, timeout=30)
        assert refused.status_code == 415
        parameters = httpx.get(f"{url}/execution-parameters", timeout=5).json()
        assert parameters["BatchStrategy"] == "MULTI_RECORD" and parameters["MaxPayloadInMB"] == 16
        assert parameters["MaxConcurrentTransforms"] >= 1
        assert "/opt/ml/model" in container.logs()
        # SIGTERM: /ping says not-ready at once (the drain), then the server exits 0.
        engine("kill", "--signal", "TERM", container.name)
        deadline = time.monotonic() + 3
        while (ping := httpx.get(f"{url}/ping", timeout=2)).status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ping.status_code == 503
        try:
            exit_code = engine("wait", container.name, timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 30 s after SIGTERM:\n{container.logs()[-4000:]}")
        assert exit_code == "0", container.logs()[-4000:]


def test_sagemaker_bind_to_port(engine, image, model_dir):
    run_args = ("--env", "SAGEMAKER_BIND_TO_PORT=9090", "--volume", f"{model_dir}:/opt/ml/model:ro")
    with running_container(engine, image, "serve", run_args=run_args, http_port=9090) as container:
        body = json.dumps({"instances": FRAME.to_dict(orient="records")})
        answer = httpx.post(f"{container.http_url}/invocations", content=body, headers={"content-type": JSON})
        assert answer.json() == {"predictions": train(1).predict(FRAME.to_numpy()).tolist()}
