"""V1 protocol against the real server: httpx, kserve.InferenceRESTClient, CloudEvents SDK."""

import asyncio
import socket

import httpx
import pytest
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http
from kserve import InferenceRESTClient, RESTConfig

SETOSA, VIRGINICA = [5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def predict(served, body, **kwargs):
    return httpx.post(f"{served.http_url}/v1/models/{served.model_name}:predict", json=body, **kwargs)


def test_rows_predict_classes(served_model):
    response = predict(served_model, {"instances": [SETOSA, VIRGINICA]})
    assert response.status_code == 200
    assert response.json() == {"predictions": [0, 2]}


def test_named_feature_records_in_any_key_order(served_model):
    record = dict(zip(reversed(NAMES), reversed(VIRGINICA), strict=True))
    response = predict(served_model, {"instances": [record, dict(zip(NAMES, SETOSA, strict=True))]})
    assert response.json() == {"predictions": [2, 0]}


def test_probabilities_and_labels_on_request(served_model):
    body = predict(served_model, {"instances": [SETOSA], "parameters": {"probabilities": True, "labels": True}}).json()
    assert body["predictions"] == [0]
    assert body["labels"] == ["setosa"]
    (probabilities,) = body["probabilities"]
    assert len(probabilities) == 3 and abs(sum(probabilities) - 1) < 1e-9
    assert probabilities.index(max(probabilities)) == 0


def test_json_body_accepted_whatever_the_content_type(served_model):
    # `curl -d` sends application/x-www-form-urlencoded; stock KServe answers it with 500.
    for content_type in ("application/x-www-form-urlencoded", "text/plain", None):
        headers = {"content-type": content_type} if content_type else {}
        response = httpx.post(
            f"{served_model.http_url}/v1/models/iris:predict",
            content=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
            headers=headers,
        )
        assert response.status_code == 200, (content_type, response.text)
        assert response.json() == {"predictions": [0]}


def test_kserve_rest_client_v1(served_model):
    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v1"))
        try:
            return await client.infer(served_model.http_url, {"instances": [VIRGINICA]}, model_name="iris")
        finally:
            await client.close()

    assert asyncio.run(call()) == {"predictions": [2]}


def _cloudevent() -> CloudEvent:
    attributes = {"type": "org.example.iris.predict", "source": "tests", "content-type": "application/json"}
    return CloudEvent(attributes, {"instances": [SETOSA, VIRGINICA]})


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevents_in_and_out(served_model, mode):
    headers, body = (to_binary if mode == "binary" else to_structured)(_cloudevent())
    response = httpx.post(f"{served_model.http_url}/v1/models/iris:predict", headers=headers, content=body)
    assert response.status_code == 200, response.text
    event = from_http(dict(response.headers), response.content)
    assert event["type"] == "io.kserve.inference.response"
    data = event.data if isinstance(event.data, dict) else __import__("json").loads(event.data)
    assert data == {"predictions": [0, 2]}


def test_pipelined_requests_and_connection_close_on_a_raw_socket(served_model):
    # Responses are written once per loop iteration (http.protocol.ServerHttpProtocol): pipelined
    # requests must still come back whole and in order, and "Connection: close" only after the
    # last response has been sent.
    host, port = served_model.http_url.removeprefix("http://").split(":")
    body = b'{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}'

    def request(close: bool) -> bytes:
        headers = f"POST /v1/models/iris:predict HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        return (headers + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body

    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request(False) + request(False) + request(True))
        received = b""
        while chunk := conn.recv(65536):  # ends when the server closes the connection
            received += chunk
    responses = received.split(b"HTTP/1.1 ")[1:]
    assert len(responses) == 3
    for response in responses:
        assert response.startswith(b"200 OK") and response.endswith(b'{"predictions":[0,2]}')
