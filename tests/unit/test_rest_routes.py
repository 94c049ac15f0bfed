"""The ASGI inference routes in-process (httpx over ASGI): decoding, the seam, encoding, pass-through."""

import asyncio

import httpx
import numpy as np
import orjson
import pytest

from model_server.core.access import ManagementAccess
from model_server.core.codec import INFERENCE_HEADER_LENGTH
from model_server.core.dataplane import DataPlane, FixedRegistry, ServedModel
from model_server.core.repository import ModelRepository
from model_server.core.settings import ModelSettings
from model_server.http.routes import DataPlaneRoutes

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
V2_INPUT = {"name": "x", "datatype": "FP64", "shape": [2, 4], "data": ROWS}


class Downstream:
    """The app behind the routes (KServe's, in the server): records what reaches it."""

    def __init__(self):
        self.seen = []

    async def __call__(self, scope, receive, send):
        message = await receive()
        self.seen.append((scope["method"], scope["path"], message.get("body", b"")))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"downstream"})


@pytest.fixture
def routes(iris_predictor):
    dataplane = DataPlane(FixedRegistry(iris=ServedModel("iris", iris_predictor)))
    return DataPlaneRoutes(Downstream(), dataplane, max_body_bytes=4096)


def send(routes, method, path, **kwargs) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=routes)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_v1_predict(routes):
    response = send(routes, "POST", "/v1/models/iris:predict", json={"instances": ROWS})
    assert response.status_code == 200 and response.json() == {"predictions": [0, 2]}


def test_v1_body_read_as_json_whatever_the_content_type(routes):
    body = orjson.dumps({"instances": ROWS, "parameters": {"labels": True}})
    response = send(
        routes,
        "POST",
        "/v1/models/iris:predict",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json() == {"predictions": [0, 2], "labels": ["setosa", "virginica"]}


def test_v2_json_and_binary_outputs(routes):
    request = {
        "id": "r1",
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": ROWS}],
        "outputs": [{"name": "label"}, {"name": "predict", "parameters": {"binary_data": True}}],
    }
    response = send(routes, "POST", "/v2/models/iris/versions/1/infer", json=request)
    assert response.status_code == 200
    n = int(response.headers[INFERENCE_HEADER_LENGTH])
    header = orjson.loads(response.content[:n])
    assert header["id"] == "r1" and header["model_version"] == "1"
    label, predict = header["outputs"]
    assert label["data"] == ["setosa", "virginica"] and predict["parameters"]["binary_data_size"] == 16
    assert np.frombuffer(response.content[n:], dtype="<i8").tolist() == [0, 2]


@pytest.mark.parametrize(
    "path,body,status,message",
    [
        ("/v2/models/iris/versions/2/infer", {"inputs": []}, 404, "model iris has version 1, not 2"),
        ("/v2/models/nope/infer", {"inputs": []}, 404, "Model with name nope does not exist."),
        ("/v2/models/iris/infer", {"inputs": []}, 400, '"inputs" must be a non-empty list'),
        ("/v1/models/iris:predict", {"instances": [[1]]}, 400, "has 1 features, the model expects 4"),
        ("/v1/models/iris:predict", {"instances": [ROWS[0] * 300]}, 413, "request body exceeds 4096 bytes"),
    ],
)
def test_errors_answered_with_their_status(routes, path, body, status, message):
    response = send(routes, "POST", path, json=body)
    assert response.status_code == status and message in response.json()["error"]
    assert routes.app.seen == []


def test_other_routes_pass_through_with_their_body(routes):
    assert send(routes, "GET", "/v2/models").status_code == 299
    assert send(routes, "POST", "/v2/models/iris:explain", content=b"{}").status_code == 299
    assert routes.app.seen == [("GET", "/v2/models", b""), ("POST", "/v2/models/iris:explain", b"{}")]


@pytest.mark.parametrize(
    "path,status,body",
    [
        ("/v2/health/live", 200, {"live": True}),
        ("/v2/health/ready", 200, {"ready": True}),
        ("/v2/models/iris/ready", 200, {"name": "iris", "ready": True}),
        ("/v2/models/iris/versions/1/ready", 200, {"name": "iris", "ready": True}),
        ("/v2/models/iris/ready?model_version=1", 200, {"name": "iris", "ready": True}),
        ("/v1/models/iris", 200, {"name": "iris", "ready": True}),
        ("/v2/models/iris/versions/2/ready", 404, {"error": "model iris has version 1, not 2"}),
        ("/v2/models/nope", 404, {"error": "Model with name nope does not exist."}),
        ("/v2/models/iris/versions/2?x=1", 404, {"error": "model iris has version 1, not 2"}),
    ],
)
def test_health_readiness_and_versions_answered_here(routes, path, status, body):
    response = send(routes, "GET", path)
    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.parametrize("path", ["/v2/models/iris", "/v2/models/iris/versions/1", "/v2/models/iris?model_version=1"])
def test_metadata_for_every_served_version(routes, path):
    metadata = send(routes, "GET", path).json()
    assert metadata["name"] == "iris" and metadata["versions"] == ["1"] and metadata["platform"] == "sklearn"
    assert [i["name"] for i in metadata["inputs"]][:1] == ["sepal_length"] and len(metadata["outputs"]) == 3


def test_draining_turns_readiness_off_but_keeps_serving(routes):
    routes.dataplane.state.draining = True
    assert send(routes, "GET", "/v2/health/ready").status_code == 503
    assert send(routes, "GET", "/v2/models/iris/ready").status_code == 503
    assert send(routes, "POST", "/v1/models/iris:predict", json={"instances": ROWS}).status_code == 200


def test_repository_api_is_off_by_default(routes):
    response = send(routes, "POST", "/v2/repository/models/iris/unload")
    assert response.status_code == 404 and "--repository_api" in response.json()["error"]
    assert routes.app.seen == []


def test_repository_api_with_a_token(demo_model_dir):
    repository = ModelRepository(ModelSettings().load_predictor)
    repository.add("iris", demo_model_dir)
    repository.load_now("iris")
    routes = DataPlaneRoutes(Downstream(), DataPlane(repository, access=ManagementAccess(True, "s3cret")), 4096)
    path = "/v2/repository/models/iris/load"
    assert send(routes, "POST", path).status_code == 401
    assert send(routes, "POST", path, headers={"authorization": "Bearer wrong"}).status_code == 401
    good = {"authorization": "Bearer s3cret"}
    missing = send(routes, "POST", "/v2/repository/models/nope/load", headers=good)
    assert missing.status_code == 404 and "does not exist" in missing.json()["error"]
    assert send(routes, "POST", path, headers=good).json() == {"name": "iris", "load": True}
    index = send(routes, "POST", "/v2/repository/index", headers=good).json()
    assert index == [{"name": "iris", "version": "1", "state": "READY"}]
    assert send(routes, "POST", "/v2/repository/models/iris/unload", headers=good).json() == {
        "name": "iris",
        "unload": True,
    }
    assert send(routes, "POST", "/v2/repository/index", headers=good).json()[0]["state"] == "UNAVAILABLE"
    assert send(routes, "POST", "/v1/models/iris:predict", json={"instances": ROWS}).status_code == 404
    assert routes.app.seen == []


CE_HEADERS = {"ce-specversion": "1.0", "ce-id": "req-7", "ce-source": "t", "ce-type": "org.example.predict"}


@pytest.mark.parametrize(
    ("path", "body", "predictions"),
    [
        ("/v1/models/iris:predict", {"instances": ROWS}, lambda data: data["predictions"]),
        ("/v2/models/iris/infer", {"inputs": [V2_INPUT]}, lambda data: data["outputs"][0]["data"]),
    ],
)
def test_binary_cloudevents_answered_by_our_routes_on_v1_and_v2(routes, path, body, predictions):
    response = send(routes, "POST", path, json=body, headers=CE_HEADERS)
    assert response.status_code == 200 and routes.app.seen == []
    assert response.headers["ce-type"] == "io.kserve.inference.response"
    assert response.headers["ce-subject"] == response.headers["ce-id"] == "req-7"
    assert response.headers["ce-source"] == "io.kserve.inference.iris"
    assert predictions(response.json()) == [0, 2]


def test_structured_cloudevent_reply_is_structured(routes):
    event = {"specversion": "1.0", "id": "e1", "source": "t", "type": "x", "data": {"inputs": [V2_INPUT]}}
    headers = {"content-type": "application/cloudevents+json; charset=utf-8"}
    response = send(routes, "POST", "/v2/models/iris/infer", content=orjson.dumps(event), headers=headers)
    reply = response.json()
    assert response.headers["content-type"] == "application/cloudevents+json"
    assert (reply["type"], reply["subject"], reply["specversion"]) == ("io.kserve.inference.response", "e1", "1.0")
    assert reply["data"]["outputs"][0]["data"] == [0, 2] and reply["data"]["model_name"] == "iris"


@pytest.mark.parametrize(
    ("headers", "content", "message"),
    [
        ({**CE_HEADERS, "ce-id": ""}, b'{"instances": [[1, 2, 3, 4]]}', "missing required attributes: id"),
        ({**CE_HEADERS, "ce-specversion": "0.3"}, b'{"instances": [[1, 2, 3, 4]]}', "specversion '0.3'"),
        ({**CE_HEADERS, "content-type": "text/csv"}, b"1,2,3,4", "must be JSON"),
        ({"content-type": "application/cloudevents+json"}, b'{"specversion": "1.0"}', "id, source, type"),
        ({"content-type": "application/cloudevents+json"}, b"{", "not valid JSON"),
    ],
)
def test_bad_cloudevents_are_400_naming_the_problem(routes, headers, content, message):
    response = send(routes, "POST", "/v1/models/iris:predict", content=content, headers=headers)
    assert response.status_code == 400 and message in response.json()["error"]


def test_pass_through_bodies_are_limited_too(routes):
    response = send(routes, "POST", "/v2/models/iris:explain", content=b"x" * 5000)
    assert response.status_code == 413 and routes.app.seen == []


# -- MLflow's scoring protocol (http/mlflow.py): the server side by side with MLflow's is in
# tests/server/test_mlflow_protocol.py ------------------------------------------------------------


def test_invocations_answer_what_v1_answers(routes):
    v1 = send(routes, "POST", "/v1/models/iris:predict", json={"instances": ROWS})
    mlflow = send(routes, "POST", "/invocations", json={"instances": ROWS})
    assert mlflow.status_code == 200 and mlflow.json() == v1.json()
    too_large = send(routes, "POST", "/invocations", json={"instances": ROWS * 200})
    assert too_large.status_code == 413
    assert too_large.json() == {"error_code": "REQUEST_LIMIT_EXCEEDED", "message": "request body exceeds 4096 bytes"}
    assert routes.app.seen == []


def test_invocations_need_a_server_of_one_model(iris_predictor):
    two = FixedRegistry(iris=ServedModel("iris", iris_predictor), wine=ServedModel("wine", iris_predictor))
    response = send(DataPlaneRoutes(Downstream(), DataPlane(two), 4096), "POST", "/invocations", json={"inputs": ROWS})
    assert response.status_code == 400
    assert "serves 2 models (iris, wine)" in response.json()["message"]
    none = send(DataPlaneRoutes(Downstream(), DataPlane(FixedRegistry()), 4096), "POST", "/invocations", json={})
    assert none.status_code == 503 and none.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    assert send(DataPlaneRoutes(Downstream(), DataPlane(FixedRegistry()), 4096), "GET", "/ping").status_code == 503


def test_switched_off_protocols_answer_404_and_never_reach_kserve(iris_predictor):
    dataplane = DataPlane(FixedRegistry(iris=ServedModel("iris", iris_predictor)))
    routes = DataPlaneRoutes(Downstream(), dataplane, 4096, protocols=("mlflow",))
    for method, path in [
        ("POST", "/v1/models/iris:predict"),
        ("POST", "/v2/models/iris/infer"),
        ("GET", "/v1/models/iris"),
    ]:
        response = send(routes, method, path, json={"instances": ROWS})
        assert response.status_code == 404 and "--protocols mlflow" in response.json()["error"]
    assert send(routes, "GET", "/v2/health/ready").status_code == 200
    assert routes.app.seen == []


def test_a_large_invocations_body_is_decoded_off_the_event_loop_and_answered_whole(iris_predictor):
    dataplane = DataPlane(FixedRegistry(iris=ServedModel("iris", iris_predictor)))
    routes = DataPlaneRoutes(Downstream(), dataplane, max_body_bytes=1 << 22)
    rows = ROWS * 10_000  # ~400 KB of CSV: past THREAD_BYTES
    csv = "sepal_length,sepal_width,petal_length,petal_width\n" + "\n".join(",".join(map(str, row)) for row in rows)
    response = send(routes, "POST", "/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.status_code == 200
    v1 = send(routes, "POST", "/v1/models/iris:predict", json={"instances": ROWS}).json()["predictions"]
    assert response.json()["predictions"] == v1 * 10_000


def test_invocations_for_a_predictor_without_columns_say_where_to_go(iris_predictor):
    class TensorPredictor:  # what a predictor of named tensors (no column schema) looks like here
        version, artifact = "1", iris_predictor.artifact

    dataplane = DataPlane(FixedRegistry(graph=ServedModel("graph", TensorPredictor())))
    response = send(DataPlaneRoutes(Downstream(), dataplane, 4096), "POST", "/invocations", json={"inputs": ROWS})
    assert response.status_code == 501
    assert response.json() == {
        "error_code": "NOT_IMPLEMENTED",
        "message": "model graph takes tensors, not the columns of MLflow's formats: use /v2/models/graph/infer",
    }
