"""Kafka records -> requests -> response and error records, in-process (no broker)."""

from collections import namedtuple

import numpy as np
import orjson
import pytest

from model_server.core.codec import InferenceResponse, Output, V1Request, V2Request
from model_server.core.errors import InvalidInput
from model_server.stream.messages import decode, error_headers, response_record

Record = namedtuple("Record", "topic partition offset key value headers")
TENSOR = {"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}
RESPONSE = InferenceResponse("iris", "1", [Output("predict", "INT64", np.array([0]))])


def record(value, headers=(), offset=7):
    return Record("in", 2, offset, b"key", value, list(headers))


def test_v2_request_keeps_its_id():
    message = decode(record(orjson.dumps({"id": "r1", "inputs": [TENSOR]})))
    assert isinstance(message.request, V2Request) and message.request_id == "r1" and message.event is None


def test_a_request_without_id_is_named_after_its_record():
    message = decode(record(orjson.dumps({"inputs": [TENSOR]})))
    assert message.request_id == message.request.id == "in/2/7"  # so the V2 body carries it
    assert decode(record(orjson.dumps({"instances": [[1, 2, 3, 4]]}))).request_id == "in/2/7"


def test_v1_body_may_carry_an_id():
    message = decode(record(orjson.dumps({"id": 5, "instances": [[1, 2, 3, 4]]})))
    assert isinstance(message.request, V1Request) and message.request_id == "5"


def test_v2_binary_tensors_by_the_header_length_header():
    header = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]}
    )
    value = header + np.array([5.1, 3.5, 1.4, 0.2], dtype="<f4").tobytes()
    message = decode(record(value, [("inference-header-content-length", str(len(header)).encode())]))
    assert message.request.inputs[0].data.shape == (1, 4)


@pytest.mark.parametrize("content_type", [[("content-type", b"application/cloudevents+json")], []])
def test_structured_cloudevent_with_or_without_its_content_type(content_type):
    event = {"specversion": "1.0", "id": "e1", "source": "s", "type": "t", "data": {"inputs": [TENSOR]}}
    message = decode(record(orjson.dumps(event), content_type))
    assert message.event.structured and message.request_id == "e1" and message.request.inputs[0].name == "x"


def test_binary_cloudevent_in_kafka_headers():
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"e2"), ("ce_source", b"s"), ("ce_type", b"t")]
    message = decode(record(orjson.dumps({"instances": [[1, 2, 3, 4]]}), headers))
    assert not message.event.structured and message.request_id == "e2"


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (None, [], "no value"),
        (b"[1, 2]", [], "expected a JSON object"),
        (b'{"rows": []}', [], 'neither "inputs" (V2) nor "instances" (V1)'),
        (b"{}", [("ce_specversion", b"1.0"), ("ce_id", b"e")], "missing required attributes: source, type"),
        (
            b"1,2",
            [
                *[(f"ce_{a}", b"x") for a in ("id", "source", "type")],
                ("ce_specversion", b"1.0"),
                ("content-type", b"text/csv"),
            ],
            "must be JSON",
        ),
        (b'{"specversion": "1.0", "id": "e", "source": "s", "type": "t"}', [], "has no data"),
        (b'{"specversion": "1.0", "id": "e", "source": "s", "type": "t", "data_base64": "!!"}', [], "not base64"),
    ],
)
def test_undecodable_records_say_why(value, headers, reason):
    with pytest.raises(InvalidInput, match=None) as caught:
        decode(record(value, headers))
    assert reason in str(caught.value)


def test_response_record_headers_link_the_request():
    message = decode(record(orjson.dumps({"id": "r1", "inputs": [TENSOR]})))
    value, headers = response_record(message, record(b""), "iris", RESPONSE)
    assert orjson.loads(value)["id"] == "r1"
    assert dict(headers) == {
        "content-type": b"application/json",
        "model-server-request-id": b"r1",
        "model-server-input": b"in/2/7",
    }


def test_cloudevent_reply_in_the_request_mode():
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"e2"), ("ce_source", b"s"), ("ce_type", b"t")]
    message = decode(record(orjson.dumps({"inputs": [{**TENSOR, "parameters": {}}], "parameters": {}}), headers))
    value, reply_headers = response_record(message, record(b""), "iris", RESPONSE)
    reply = dict(reply_headers)
    assert reply["ce_type"] == b"io.kserve.inference.response" and reply["ce_subject"] == b"e2"
    assert reply["ce_source"] == b"io.kserve.inference.iris" and reply["content-type"] == b"application/json"
    assert orjson.loads(value)["outputs"][0]["data"] == [0]


def test_error_headers_keep_the_record_headers():
    headers = dict(error_headers(record(b"x", [("trace", b"1")]), "bad", 400, None))
    assert headers == {
        "trace": b"1",
        "model-server-error": b"bad",
        "model-server-status": b"400",
        "model-server-request-id": b"in/2/7",
        "model-server-input": b"in/2/7",
    }
