"""Kafka records <-> inference requests and responses.

A record's value is a V2 inference request (the REST JSON body; the binary tensor extension with
an ``inference-header-content-length`` header), a V1 body, or a CloudEvent whose data is one of
them (structured, or binary mode in ``ce_*`` headers: the CloudEvents Kafka binding). A response
goes out with the request's key, the request id and a header naming the input record; a record
that cannot be answered goes to the error topic as it came (key, value, headers) plus the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import orjson

from ..core.codec import (
    INFERENCE_HEADER_LENGTH,
    InferenceResponse,
    V1Request,
    V2Request,
    cloudevent,
    decode_v1,
    decode_v2_rest,
    encode_v2_rest,
    loads_json,
    v1_response,
)
from ..core.codec.types import JSON_CONTENT
from ..core.errors import InvalidInput

Headers = list[tuple[str, bytes]]

INPUT_HEADER = "model-server-input"  # <topic>/<partition>/<offset> of the request
REQUEST_ID_HEADER = "model-server-request-id"
ERROR_HEADER = "model-server-error"  # why the record could not be answered
STATUS_HEADER = "model-server-status"  # the HTTP status the same error gets from the server
JSON = b"application/json"


@dataclass
class Message:
    request: V1Request | V2Request
    request_id: str
    event: cloudevent.CloudEvent | None  # the CloudEvent around the request, if any


def input_coordinates(record) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


def decode(record) -> Message:
    """The request of a record; InvalidInput names what is wrong with it."""
    value, headers = record.value, record.headers
    if value is None:
        raise InvalidInput("the message has no value (a tombstone?)")
    event = cloudevent.from_kafka(headers, value) if headers else None
    if event is None:
        header_length = cloudevent.kafka_header(headers, INFERENCE_HEADER_LENGTH) if headers else None
        if header_length is not None:  # V2 with binary tensors: JSON header, then raw bytes
            request = decode_v2_rest(value, header_length)
            return _identified(Message(request, request.id or input_coordinates(record), None))
        if b'"inputs"' in value:  # most likely V2: parsed once; anything else takes the long way
            try:
                request = decode_v2_rest(value, None)
            except InvalidInput:
                pass
            else:
                return _identified(Message(request, request.id or input_coordinates(record), None))
        body = value
    else:
        body = event.data
    doc = loads_json(body)
    if event is None and isinstance(doc, dict) and "specversion" in doc:
        # A structured CloudEvent without its content-type header: still one.
        event = cloudevent.from_structured(doc)
        body = event.data
        doc = loads_json(body)
    if not isinstance(doc, dict):
        raise InvalidInput('expected a JSON object: a V2 request {"inputs": [...]} or a V1 body {"instances": [...]}')
    if "inputs" in doc:
        request = decode_v2_rest(body, None)
        own_id = request.id
    elif "instances" in doc:
        request = decode_v1(doc)
        own_id = doc.get("id")
    else:
        raise InvalidInput('the request has neither "inputs" (V2) nor "instances" (V1)')
    request_id = event.id if event is not None else own_id
    request_id = str(request_id) if request_id is not None else input_coordinates(record)
    return _identified(Message(request, request_id, event))


def _identified(message: Message) -> Message:
    # A V2 response carries the id in its body too; a request without one gets the record's.
    if isinstance(message.request, V2Request) and message.request.id is None:
        message.request.id = message.request_id
    return message


def response_record(message: Message, record, model_name: str, response: InferenceResponse) -> tuple[bytes, Headers]:
    """Value and headers of the response to ``message``, read from ``record``."""
    request = message.request
    if isinstance(request, V1Request):
        body, content_type = orjson.dumps(v1_response(response)), JSON
        extra = []
    else:
        if message.event is not None:  # CloudEvent data is JSON: binary outputs go as JSON
            request = replace(request, binary_outputs=set())
        body, http_headers = encode_v2_rest(request, response)
        if http_headers is JSON_CONTENT:  # the common case: nothing to convert
            content_type, extra = JSON, []
        else:
            content_type = http_headers["content-type"].encode()
            extra = [(name, value.encode()) for name, value in http_headers.items() if name != "content-type"]
    if message.event is not None:
        value, headers = cloudevent.to_kafka(cloudevent.reply(message.event, model_name, body))
    else:
        value, headers = body, [("content-type", content_type), *extra]
    headers.append((REQUEST_ID_HEADER, message.request_id.encode()))
    headers.append((INPUT_HEADER, input_coordinates(record).encode()))
    return value, headers


def error_headers(record, reason: str, status: int, request_id: str | None) -> Headers:
    """The record's own headers plus why it could not be answered."""
    headers = [*record.headers, (ERROR_HEADER, reason.encode()), (STATUS_HEADER, str(status).encode())]
    headers.append((REQUEST_ID_HEADER, (request_id or input_coordinates(record)).encode()))
    headers.append((INPUT_HEADER, input_coordinates(record).encode()))
    return headers
