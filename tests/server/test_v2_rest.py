"""V2 REST against the real server: tritonclient.http (binary and JSON), kserve client, httpx."""

import asyncio

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as tritonhttp  # the http client has no protobufs: it can share a process with kserve
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def infer(served, body, **kwargs):
    return httpx.post(f"{served.http_url}/v2/models/{served.model_name}/infer", json=body, **kwargs)


@pytest.fixture
def triton(served_model):
    client = tritonhttp.InferenceServerClient(served_model.http_url.removeprefix("http://"))
    yield client
    client.close()


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_tritonclient_http(triton, binary, datatype):
    tensor = tritonhttp.InferInput("input-0", list(ROWS.shape), datatype)
    tensor.set_data_from_numpy(ROWS.astype(np.float32 if datatype == "FP32" else np.float64), binary_data=binary)
    outputs = [
        tritonhttp.InferRequestedOutput(name, binary_data=binary) for name in ("predict", "label", "predict_proba")
    ]
    result = triton.infer("iris", [tensor], outputs=outputs)
    assert result.as_numpy("predict").tolist() == [0, 2]
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == ["setosa", "virginica"]
    assert result.as_numpy("predict_proba").shape == (2, 3)
    assert result.get_response()["model_version"] == "1"


def test_tritonclient_health_and_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready() and triton.is_model_ready("iris")
    metadata = triton.get_model_metadata("iris")
    assert [i["name"] for i in metadata["inputs"]] == NAMES
    assert all(i["datatype"] == "FP64" and i["shape"] == [-1] for i in metadata["inputs"])
    outputs = {o["name"]: o for o in metadata["outputs"]}
    assert outputs["predict"]["datatype"] == "INT64"
    assert outputs["predict_proba"]["shape"] == [-1, 3]
    assert outputs["label"]["datatype"] == "BYTES"
    assert metadata["versions"] == ["1"]


def test_flat_and_nested_data_agree(served_model):
    flat = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": ROWS.ravel().tolist()}]}
    nested = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": ROWS.tolist()}]}
    a, b = infer(served_model, flat), infer(served_model, nested)
    assert a.status_code == b.status_code == 200
    assert a.json()["outputs"] == b.json()["outputs"]
    assert a.json()["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 2]}


@pytest.mark.parametrize(
    "datatype,data",
    [("INT32", [[5, 3, 1, 0], [7, 3, 5, 2]]), ("INT64", [[5, 3, 1, 0], [7, 3, 5, 2]]), ("FP32", ROWS.tolist())],
)
def test_numeric_datatypes(served_model, datatype, data):
    body = {"inputs": [{"name": "x", "datatype": datatype, "shape": [2, 4], "data": data}]}
    response = infer(served_model, body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [0, 2]


def test_bool_tensor_for_numeric_features(served_model):
    body = {"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1, 4], "data": [True, False, True, False]}]}
    response = infer(served_model, body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [1]


def test_one_tensor_per_named_feature(served_model):
    inputs = [
        {"name": name, "datatype": "FP64", "shape": [2], "data": ROWS[:, j].tolist()}
        for j, name in reversed(list(enumerate(NAMES)))
    ]
    response = infer(served_model, {"id": "req-7", "inputs": inputs, "outputs": [{"name": "label"}]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == "req-7" and body["model_name"] == "iris" and body["model_version"] == "1"
    assert body["outputs"] == [{"name": "label", "datatype": "BYTES", "shape": [2], "data": ["setosa", "virginica"]}]


def test_versioned_route(served_model):
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": ROWS[0].tolist()}]}
    ok = httpx.post(f"{served_model.http_url}/v2/models/iris/versions/1/infer", json=body)
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == [0]
    wrong = httpx.post(f"{served_model.http_url}/v2/models/iris/versions/9/infer", json=body)
    assert wrong.status_code == 404 and "version" in wrong.json()["error"]


def test_kserve_rest_client_v2(served_model):
    async def call():
        tensor = InferInput("input-0", [2, 4], "FP32")
        tensor.set_data_from_numpy(ROWS.astype(np.float32), binary_data=False)
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        try:
            return await client.infer(served_model.http_url, InferRequest("iris", [tensor]), model_name="iris")
        finally:
            await client.close()

    response = asyncio.run(call())
    assert response.outputs[0].name == "predict"
    assert response.outputs[0].as_numpy().tolist() == [0, 2]


def test_server_metadata_health_metrics_and_openapi(served_model):
    url = served_model.http_url
    assert httpx.get(f"{url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{url}/v2/health/ready").json() == {"ready": True}
    assert httpx.get(f"{url}/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    infer(served_model, {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": ROWS[0].tolist()}]})
    metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    assert "model_server_batch_size_bucket" in metrics.text
    assert 'model_server_requests_total{code="200",model="iris",protocol="v2",version="1"}' in metrics.text
    assert "request_predict_seconds" in metrics.text  # KServe's own metrics are kept
    openapi = httpx.get(f"{url}/openapi.json")
    assert openapi.status_code == 200 and "/v2/models/{model_name}/infer" in openapi.json()["paths"]


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_on_v2_infer_reply_routable_and_correlated(served_model, mode):
    # KServe answers CloudEvents on V1 predict only; ours answer V2 too, with a reply type a
    # Knative Trigger can filter on and the request id as subject.
    tensor = {"name": "x", "datatype": "FP64", "shape": [2, 4], "data": ROWS.tolist()}
    request = CloudEvent({"type": "org.example.iris.infer", "source": "tests", "id": "iris-42"}, {"inputs": [tensor]})
    headers, body = (to_binary if mode == "binary" else to_structured)(request)
    response = httpx.post(f"{served_model.http_url}/v2/models/iris/infer", headers=headers, content=body)
    assert response.status_code == 200, response.text
    reply = from_http(dict(response.headers), response.content)
    assert reply["type"] == "io.kserve.inference.response" != request["type"]
    assert reply["subject"] == "iris-42" and reply["source"] == "io.kserve.inference.iris"
    data = reply.data if isinstance(reply.data, dict) else orjson.loads(reply.data)
    assert data["outputs"][0]["data"] == [0, 2]
