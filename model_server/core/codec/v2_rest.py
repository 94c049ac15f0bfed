"""The V2 (Open Inference Protocol) REST format: JSON, and the binary tensor extension (raw tensor
bytes after the JSON, ``inference-header-content-length`` saying where the JSON ends)."""

from __future__ import annotations

import orjson

from ..errors import InvalidInput
from .tensors import (
    check_datatype,
    check_shape,
    json_object,
    loads_json,
    tensor_from_bytes,
    tensor_from_json,
    tensor_to_bytes,
)
from .types import JSON_CONTENT, InferenceResponse, Tensor, V2Request

INFERENCE_HEADER_LENGTH = "inference-header-content-length"


def json_length(header_length: str, body_size: int) -> int:
    """The ``inference-header-content-length``: a decimal count of bytes within the body, else a
    400 (a value of thousands of digits is one too: Python refuses to parse it, a ValueError)."""
    text = header_length.strip()
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(f"{INFERENCE_HEADER_LENGTH} must be an integer, got {header_length[:40]!r}")
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(body_size)) or int(digits) > body_size:
        raise InvalidInput(f"{INFERENCE_HEADER_LENGTH} is {text[:40]}, but the body has {body_size} bytes")
    return int(digits)


def decode_v2_rest(body: bytes, header_length: str | None) -> V2Request:
    """A V2 REST body; with the binary extension the JSON header is followed by tensor bytes."""
    binary = b""
    if header_length is not None:
        n = json_length(header_length, len(body))
        body, binary = body[:n], memoryview(body)[n:]
    doc = loads_json(body)
    if not isinstance(doc, dict):
        raise InvalidInput('expected a JSON object like {"inputs": [...]}')
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('"inputs" must be a non-empty list of tensors')
    offset = 0
    tensors = []
    for i, spec in enumerate(inputs):
        tensor, used = _decode_rest_tensor(i, spec, binary, offset)
        tensors.append(tensor)
        offset += used
    if offset != len(binary):
        raise InvalidInput(f"binary inputs declare {offset} bytes, the body carries {len(binary)}")
    parameters = json_object(doc.get("parameters"), '"parameters"')
    all_binary = bool(parameters.get("binary_data_output", False))
    outputs, binary_outputs = None, set()
    if doc.get("outputs") is not None:
        if not isinstance(doc["outputs"], list):
            raise InvalidInput('"outputs" must be a list of {"name": ...} objects')
        outputs = []
        for spec in doc["outputs"]:
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise InvalidInput('each requested output must be an object with a string "name"')
            outputs.append(spec["name"])
            if json_object(spec.get("parameters"), "output parameters").get("binary_data", all_binary):
                binary_outputs.add(spec["name"])
    elif all_binary:
        binary_outputs = {"*"}
    request_id = doc.get("id")
    return V2Request(str(request_id) if request_id is not None else None, tensors, outputs, binary_outputs)


def _decode_rest_tensor(i: int, spec: object, binary: memoryview, offset: int) -> tuple[Tensor, int]:
    if not isinstance(spec, dict):
        raise InvalidInput(f"inputs[{i}] must be an object with name, datatype, shape and data")
    name = spec.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f'inputs[{i}] needs a string "name"')
    datatype = check_datatype(name, spec.get("datatype"))
    shape = check_shape(name, spec.get("shape"))
    size = _binary_size(name, spec.get("parameters"))
    if size is not None:
        if "data" in spec:
            raise InvalidInput(f"input '{name}' has both \"data\" and binary_data_size")
        if offset + size > len(binary):
            raise InvalidInput(f"input '{name}' declares {size} binary bytes, only {len(binary) - offset} remain")
        return Tensor(name, datatype, tensor_from_bytes(name, datatype, shape, binary[offset : offset + size])), size
    if "data" not in spec:
        raise InvalidInput(f"input '{name}' has no \"data\"")
    return Tensor(name, datatype, tensor_from_json(name, datatype, shape, spec["data"])), 0


def _binary_size(name: str, parameters: object) -> int | None:
    size = json_object(parameters, f"input '{name}' parameters").get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer")
    return size


def encode_v2_rest(request: V2Request, response: InferenceResponse) -> tuple[bytes, dict[str, str]]:
    """The V2 response; outputs the request asked as binary (or all, with "*") go as raw bytes
    after the JSON, with the inference-header-content-length header."""
    binary = request.binary_outputs
    specs, chunks = [], []
    for out in response.outputs:
        spec = {"name": out.name, "datatype": out.datatype, "shape": list(out.data.shape)}
        if out.name in binary or "*" in binary:
            raw = tensor_to_bytes(out.datatype, out.data)
            spec["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            spec["data"] = out.data.ravel().tolist()
        specs.append(spec)
    doc = {"model_name": response.model_name, "model_version": response.model_version, "outputs": specs}
    if request.id is not None:
        doc["id"] = request.id
    header = orjson.dumps(doc)
    if not chunks:
        return header, JSON_CONTENT
    return b"".join([header, *chunks]), {
        "content-type": "application/octet-stream",
        INFERENCE_HEADER_LENGTH: str(len(header)),
    }
