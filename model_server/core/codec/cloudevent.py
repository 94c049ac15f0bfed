"""CloudEvents 1.0 in and out: the event around an inference request, and the reply event.

Two bindings, each in its two modes: HTTP (binary: ``ce-*`` headers; structured:
``application/cloudevents+json``) for the server's routes, and Kafka (binary: ``ce_*`` headers;
structured: a ``content-type: application/cloudevents+json`` header) for the stream consumer.
The data of an inference event is a V1 or V2 JSON body. A small decoder and encoder rather than
the ``cloudevents`` SDK (installed with KServe): the wire format is a handful of attributes, and
the SDK takes ~55 us to read one binary-mode HTTP event, ~8x this module (more than the whole
one-row request costs otherwise); the stream consumer reads thousands a second.

The reply keeps the request's mode and is routable and correlatable where KServe's is not:
``type`` is ``io.kserve.inference.response`` (KServe's; ``CE_TYPE`` overrides it, as in KServe)
so a Knative Trigger can tell replies from requests, ``subject`` is the request's ``id``, and the
reply's own ``id`` is the request's too (under its own ``source``, ``io.kserve.inference.<model>``
or ``CE_SOURCE``): a request delivered twice gets two replies that CloudEvents calls one event.
KServe answers with a fresh random id, no subject, and requires a ``time`` the spec makes optional.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from ..errors import InvalidInput
from . import loads_json

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
REQUIRED = ("specversion", "id", "source", "type")
REPLY_TYPE = "io.kserve.inference.response"


@dataclass
class CloudEvent:
    attributes: dict[str, str]  # context attributes and extensions, without the data
    data: bytes  # the data as JSON bytes (a structured event's is serialized again)
    structured: bool

    @property
    def id(self) -> str:
        return self.attributes["id"]

    def json(self) -> object:
        return loads_json(self.data)


# -- reading ----------------------------------------------------------------------------------


def is_http_event(headers: Mapping[str, str]) -> bool:
    """``headers`` with lower-case names."""
    return "ce-specversion" in headers or headers.get("content-type", "").startswith(STRUCTURED_CONTENT_TYPE)


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """The event of an HTTP request (``headers`` with lower-case names)."""
    content_type = headers.get("content-type", "")
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        return from_structured(body)
    attributes = {
        name[3:]: urllib.parse.unquote(value) if "%" in value else value
        for name, value in headers.items()
        if name.startswith("ce-")
    }
    return _binary(attributes, content_type, body)


def kafka_header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("utf-8", "replace")
    return None


def from_kafka(headers: Sequence[tuple[str, bytes]], value: bytes) -> CloudEvent | None:
    """The event of a Kafka record, or None when the record is not a CloudEvent."""
    content_type = kafka_header(headers, "content-type") or ""
    if content_type.startswith(STRUCTURED_CONTENT_TYPE):
        return from_structured(value)
    attributes = {
        key[3:].lower(): raw.decode("utf-8", "replace") for key, raw in headers if key.lower().startswith("ce_")
    }
    if "specversion" not in attributes:
        return None
    return _binary(attributes, content_type, value)


def from_structured(body: bytes | object) -> CloudEvent:
    """A structured-mode event: its JSON bytes, or the JSON object already parsed."""
    doc = loads_json(body) if isinstance(body, bytes | bytearray | memoryview) else body
    if not isinstance(doc, dict):
        raise InvalidInput("a structured CloudEvent must be a JSON object")
    attributes = {name: value for name, value in doc.items() if name not in ("data", "data_base64")}
    _check(attributes)
    if "data_base64" in doc:
        try:
            data = base64.b64decode(doc["data_base64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"CloudEvent data_base64 is not base64: {exc}") from None
    elif "data" in doc:
        data = orjson.dumps(doc["data"])
    else:
        raise InvalidInput("the CloudEvent has no data (an inference request)")
    return CloudEvent({name: str(value) for name, value in attributes.items()}, data, structured=True)


def _binary(attributes: dict[str, str], content_type: str, data: bytes) -> CloudEvent:
    _check(attributes)
    media_type = content_type.split(";")[0].strip().lower()
    if media_type and media_type != JSON_CONTENT_TYPE and not media_type.endswith("+json"):
        raise InvalidInput(f"CloudEvent data must be JSON (an inference request), got content-type {content_type}")
    if content_type:
        attributes["datacontenttype"] = content_type
    return CloudEvent(attributes, bytes(data), structured=False)


def _check(attributes: Mapping[str, object]) -> None:
    missing = [name for name in REQUIRED if not attributes.get(name)]
    if missing:
        raise InvalidInput(f"CloudEvent is missing required attributes: {', '.join(missing)}")
    if attributes["specversion"] != "1.0":
        raise InvalidInput(f"CloudEvents specversion {attributes['specversion']!r} is not supported (1.0 is)")


# -- replying ---------------------------------------------------------------------------------


def reply(request: CloudEvent, model_name: str, data: bytes) -> CloudEvent:
    """The reply to ``request``, carrying ``data`` (a JSON response body), in the request's mode."""
    attributes = {
        "specversion": "1.0",
        "id": request.id,
        "source": os.environ.get("CE_SOURCE") or f"io.kserve.inference.{model_name}",
        "type": os.environ.get("CE_TYPE") or REPLY_TYPE,
        "subject": request.id,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "datacontenttype": JSON_CONTENT_TYPE,
    }
    return CloudEvent(attributes, data, request.structured)


def to_structured(event: CloudEvent) -> bytes:
    return orjson.dumps({**event.attributes, "data": orjson.Fragment(event.data)})


def to_http(event: CloudEvent) -> tuple[bytes, dict[str, str]]:
    """The HTTP body and headers of ``event``."""
    if event.structured:
        return to_structured(event), {"content-type": STRUCTURED_CONTENT_TYPE}
    headers = {
        f"ce-{name}": urllib.parse.quote(value, safe=" !#$&'()*+,/:;=?@[]~")
        for name, value in event.attributes.items()
        if name != "datacontenttype"
    }
    headers["content-type"] = event.attributes.get("datacontenttype", JSON_CONTENT_TYPE)
    return event.data, headers


def to_kafka(event: CloudEvent) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The Kafka value and headers of ``event``."""
    if event.structured:
        return to_structured(event), [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
    headers = [(f"ce_{name}", value.encode()) for name, value in event.attributes.items() if name != "datacontenttype"]
    headers.append(("content-type", event.attributes.get("datacontenttype", JSON_CONTENT_TYPE).encode()))
    return event.data, headers
