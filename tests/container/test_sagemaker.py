"""The image run as SageMaker runs a hosting container: ``docker run <image> serve`` with the model
at /opt/ml/model, port 8080 (or SAGEMAKER_BIND_TO_PORT), GET /ping, POST /invocations in JSON and
CSV, GET /execution-parameters, SIGTERM. We cannot call AWS from here: the contract is checked
against the image under the real engine, as SageMaker would run it (docs/sagemaker.md)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from model_server.demo import train

from .container_engine import RUN_LIMITS, running_container

pytestmark = pytest.mark.timeout(1800)  # the first test may build the image (a few minutes, cold)

IRIS = load_iris()
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]  # the demo model's features
FRAME = pd.DataFrame(IRIS.data[[0, 50, 100]], columns=COLUMNS)


@pytest.fixture(scope="module")
def model_dir(engine, image, tmp_path_factory):
    """The demo model v1, written by the image's own scikit-learn as the engine's user (any host reads it)."""
    directory = tmp_path_factory.mktemp("sagemaker") / "model"
    directory.mkdir()
    engine(
        "run",
        "--rm",
        *RUN_LIMITS,
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--volume",
        f"{directory}:/out",
        "--entrypoint",
        "/opt/venv/bin/python",
        image.tag,
        "-m",
        "model_server.demo",
        "/out",
    )
    return directory


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
            headers={"content-type": "application/json"},
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
    name = f"model-server-test-{uuid.uuid4().hex[:10]}"
    engine(
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        *RUN_LIMITS,
        "--env",
        "SAGEMAKER_BIND_TO_PORT=9090",
        "--publish",
        "127.0.0.1::9090",
        "--volume",
        f"{model_dir}:/opt/ml/model:ro",
        image.tag,
        "serve",
    )
    try:
        url = "http://" + engine("port", name, "9090/tcp").splitlines()[0]
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, engine.run("logs", name, check=False).stderr[-4000:]
            time.sleep(0.2)
        body = json.dumps({"instances": FRAME.to_dict(orient="records")})
        answer = httpx.post(f"{url}/invocations", content=body, headers={"content-type": "application/json"})
        assert answer.json() == {"predictions": train(1).predict(FRAME.to_numpy()).tolist()}
    finally:
        engine.run("rm", "--force", name, check=False)
