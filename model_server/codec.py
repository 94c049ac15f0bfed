"""Wire formats: V1 JSON, V2 REST JSON with the binary tensor extension, V2 gRPC tensors.

Decoding turns bytes into a ``V1Request`` (rows) or a ``V2Request`` (``Tensor`` objects: numpy
arrays of the declared shape); ``schema.py`` then checks them against the model. Encoding turns
an ``InferenceResponse`` back into bytes, with the request's id and binary-output choice taken
from the decoded request by the transport (the model never sees them). Decoding errors are client errors
(``InvalidInput``: HTTP 400 / gRPC INVALID_ARGUMENT) that name the tensor at fault.

Why not KServe's own codec: it parses every V2 REST body through pydantic (slow), rejects plain
JSON requests from ``tritonclient.http`` with ``binary_data=False`` ("received byte inputs, but the
inference-header-content-length header is missing"), and turns malformed tensors into 500s.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np
import orjson

from .errors import InvalidInput

INFERENCE_HEADER_LENGTH = "inference-header-content-length"
JSON_CONTENT = {"content-type": "application/json"}
# Models take [N, F] or [N] tensors (the schema says so for anything else); past a few dimensions
# a shape is only a client's mistake, and numpy cannot even hold one past 64.
MAX_DIMS = 8

NUMPY_DTYPES = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
# Which numpy kinds JSON data may decode to for each datatype family (ints are fine as floats).
ACCEPTED_KINDS = {"BOOL": "b", "UINT": "iu", "INT": "iu", "FP": "iuf"}


@dataclass
class Tensor:
    name: str
    datatype: str
    data: np.ndarray  # already in the declared shape


# Output names: what a model can answer (the predictor says which of them a model has).
PREDICT, PROBA, LABEL = "predict", "predict_proba", "label"
# V1 asks for outputs beyond "predictions" by parameter, and answers them under the same key.
V1_OUTPUT_PARAMETERS = {"probabilities": PROBA, "labels": LABEL}


@dataclass
class V1Request:
    instances: object  # the rows, checked by the schema
    outputs: list[str]  # PREDICT, then those the parameters ask for

    def unknown_outputs(self, unknown: list[str], estimator: str, available: list[str]) -> InvalidInput:
        parameters = [p for p, output in V1_OUTPUT_PARAMETERS.items() if output in unknown]
        return InvalidInput(f'parameter "{parameters[0]}" is not available for {estimator}')


@dataclass
class V2Request:
    id: str | None
    inputs: list[Tensor]
    outputs: list[str] | None = None  # requested output names, None = the defaults
    binary_outputs: set[str] = field(default_factory=set)

    def unknown_outputs(self, unknown: list[str], estimator: str, available: list[str]) -> InvalidInput:
        return InvalidInput(f"unknown outputs {unknown}; this model has {available}")


@dataclass
class Output:
    name: str
    datatype: str
    data: np.ndarray


@dataclass
class InferenceResponse:
    model_name: str
    model_version: str
    outputs: list[Output]


def loads_json(body: bytes) -> object:
    """orjson, and only where it fails, Python's json: it also reads the NaN, Infinity and
    -Infinity tokens that Python's and tritonclient's encoders write (not JSON, but what clients
    send for missing values). The common path pays nothing for it."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidInput(f"request body is not valid JSON: {exc}") from None


# -- V1 ---------------------------------------------------------------------------------------


def decode_v1(doc: object) -> V1Request:
    """A V1 ``{"instances": [...], "parameters": {...}}`` body, already parsed from JSON."""
    if not isinstance(doc, dict):
        raise InvalidInput('expected a JSON object like {"instances": [[...], ...]}')
    if "instances" not in doc:
        hint = ' (this is the V1 endpoint; V2 "inputs" go to /v2/models/{name}/infer)' if "inputs" in doc else ""
        raise InvalidInput(f'missing "instances"{hint}')
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput('"parameters" must be an object')
    outputs = [PREDICT] + [output for parameter, output in V1_OUTPUT_PARAMETERS.items() if parameters.get(parameter)]
    return V1Request(doc["instances"], outputs)


def v1_response(response: InferenceResponse) -> dict:
    """``{"predictions": [...]}``, plus ``probabilities`` / ``labels`` when they were asked for."""
    by_name = {output.name: output.data for output in response.outputs}
    body = {"predictions": by_name[PREDICT].tolist()}
    for parameter, output in V1_OUTPUT_PARAMETERS.items():
        if output in by_name:
            body[parameter] = by_name[output].tolist()
    return body


def encode_v1(request: V1Request, response: InferenceResponse) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps(v1_response(response)), JSON_CONTENT


# -- V2 REST ----------------------------------------------------------------------------------


def decode_v2_rest(body: bytes, header_length: str | None) -> V2Request:
    """A V2 REST body; with the binary extension the JSON header is followed by tensor bytes."""
    binary = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise InvalidInput(f"{INFERENCE_HEADER_LENGTH} must be an integer, got {header_length!r}") from None
        if not 0 <= n <= len(body):
            raise InvalidInput(f"{INFERENCE_HEADER_LENGTH} is {n}, but the body has {len(body)} bytes")
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
    parameters = _object(doc.get("parameters"), '"parameters"')
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
            if _object(spec.get("parameters"), "output parameters").get("binary_data", all_binary):
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


def tensor_from_json(name: str, datatype: str, shape: list[int], data: object) -> np.ndarray:
    if not isinstance(data, list):
        data = [data]
    if datatype == "BYTES":
        flat = np.array(data, dtype=object).ravel() if data else np.empty(0, dtype=object)
        if not all(isinstance(v, str) for v in flat):
            raise InvalidInput(f"input '{name}' is BYTES: its data must be strings")
        array = flat
    else:
        try:
            array = np.array(data)
        except (ValueError, TypeError):
            raise InvalidInput(f"input '{name}': data is ragged (nested lists of unequal length)") from None
        family = datatype.rstrip("0123456789")
        if datatype == "UINT64" and array.dtype.kind == "f":
            array = _exact_uint64(data, array)
        if family == "FP" and array.dtype.kind == "O":
            array = _nulls_as_nan(data, array)
        if array.size and array.dtype.kind not in ACCEPTED_KINDS[family]:
            found = {"U": "strings", "O": "null, nested or mixed values", "f": "fractional numbers", "b": "booleans"}
            raise InvalidInput(
                f"input '{name}' is {datatype}, but its data holds {found.get(array.dtype.kind, array.dtype.name)}"
            )
        _check_range(name, datatype, array)
        with np.errstate(over="ignore"):  # a float past FP16/FP32's range is inf: the schema refuses it
            array = array.ravel().astype(NUMPY_DTYPES[datatype], copy=False)
    return _array_of_size(name, shape, array)


def _check_range(name: str, datatype: str, array: np.ndarray) -> None:
    """Integers outside their datatype's range are refused: a cast would wrap them around."""
    if datatype.rstrip("0123456789") in ("INT", "UINT") and array.size:
        limits = np.iinfo(NUMPY_DTYPES[datatype])
        if array.min() < limits.min or array.max() > limits.max:
            raise InvalidInput(f"input '{name}' is {datatype}: its values must lie in [{limits.min}, {limits.max}]")


def _nulls_as_nan(data: list, parsed: np.ndarray) -> np.ndarray:
    """null in floating-point data is a missing value: NaN (the schema then says whether the model
    takes NaN). Anything else that made the data an object array stays as it is, to be refused."""
    flat = parsed.ravel()
    if all(v is None or (type(v) in (int, float)) for v in flat):
        return np.array(data, dtype=np.float64)
    return parsed


def _exact_uint64(data: list, parsed: np.ndarray) -> np.ndarray:
    """numpy reads a list of integers that mixes values past 2**63 with smaller ones as float64,
    losing digits; UINT64 holds them exactly."""
    flat = np.array(data, dtype=object).ravel()
    if all(type(v) is int and 0 <= v < 2**64 for v in flat):
        return flat.astype(np.uint64)
    return parsed


def tensor_from_bytes(name: str, datatype: str, shape: list[int], raw) -> np.ndarray:
    expected = math.prod(shape)
    if datatype == "BYTES":
        array = _split_length_prefixed(name, bytes(raw))
    else:
        itemsize = NUMPY_DTYPES[datatype].itemsize
        if len(raw) != expected * itemsize:
            raise InvalidInput(
                f"input '{name}': shape {shape} of {datatype} needs {expected * itemsize} bytes, got {len(raw)}"
            )
        array = np.frombuffer(raw, dtype=NUMPY_DTYPES[datatype].newbyteorder("<"))
    return _array_of_size(name, shape, array)


def _split_length_prefixed(name: str, raw: bytes) -> np.ndarray:
    """BYTES elements on the wire: a 4-byte little-endian length, then that many bytes."""
    items, pos = [], 0
    while pos < len(raw):
        if pos + 4 > len(raw):
            raise InvalidInput(f"input '{name}': truncated BYTES element length")
        (n,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + n > len(raw):
            raise InvalidInput(f"input '{name}': BYTES element runs past the end of the data")
        items.append(raw[pos : pos + n])
        pos += n
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def check_datatype(name: str, datatype: object) -> str:
    if not isinstance(datatype, str) or datatype.upper() not in NUMPY_DTYPES:
        raise InvalidInput(f"input '{name}': unknown datatype {datatype!r}; expected one of {', '.join(NUMPY_DTYPES)}")
    return datatype.upper()


def check_shape(name: str, shape: object) -> list[int]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInput(f"input '{name}': shape must be a list of integers, got {shape!r}")
    if len(shape) > MAX_DIMS:
        shown = f"[{', '.join(map(str, shape[:4]))}, ...]"
        raise InvalidInput(
            f"input '{name}': shape {shown} has {len(shape)} dimensions (at most {MAX_DIMS}); "
            "send [N, F] (rows of features) or [N]"
        )
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input '{name}': shape {shape} has a negative dimension")
    return shape


def _binary_size(name: str, parameters: object) -> int | None:
    size = _object(parameters, f"input '{name}' parameters").get("binary_data_size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise InvalidInput(f"input '{name}': binary_data_size must be a non-negative integer")
    return size


def _object(value: object, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be an object")
    return value


# -- V2 gRPC ----------------------------------------------------------------------------------

# Typed contents field of InferTensorContents for each datatype (FP16 travels only as raw bytes).
GRPC_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


GRPC_CONTENTS_DTYPE = {
    "int_contents": np.int64,
    "int64_contents": np.int64,
    "uint_contents": np.uint64,
    "uint64_contents": np.uint64,
    "bool_contents": np.bool_,
    "fp32_contents": np.float32,
    "fp64_contents": np.float64,
    "bytes_contents": object,
}


def decode_v2_grpc(request) -> V2Request:
    """A ``ModelInferRequest``: tensors as typed contents or as raw_input_contents."""
    raw = request.raw_input_contents
    if not request.inputs:
        raise InvalidInput("the request has no inputs")
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
    tensors = []
    for i, spec in enumerate(request.inputs):
        datatype = check_datatype(spec.name, spec.datatype)
        shape = check_shape(spec.name, list(spec.shape))
        if raw:
            data = tensor_from_bytes(spec.name, datatype, shape, raw[i])
        elif datatype == "FP16":
            raise InvalidInput(f"input '{spec.name}': FP16 data must be sent in raw_input_contents")
        else:
            field = GRPC_CONTENTS_FIELD[datatype]
            # Typed contents are 32 or 64 bits wide whatever the datatype (int_contents carries
            # INT8 too): read them at the field's width, then check the datatype's range.
            values = np.array(getattr(spec.contents, field), dtype=GRPC_CONTENTS_DTYPE.get(field))
            _check_range(spec.name, datatype, values)
            data = _array_of_size(spec.name, shape, values.astype(NUMPY_DTYPES[datatype], copy=False))
        tensors.append(Tensor(spec.name, datatype, data))
    outputs = [o.name for o in request.outputs] or None
    return V2Request(request.id or None, tensors, outputs)


def _array_of_size(name: str, shape: list[int], array: np.ndarray) -> np.ndarray:
    expected = math.prod(shape)
    if array.size != expected:
        raise InvalidInput(f"input '{name}': shape {shape} needs {expected} values, data has {array.size}")
    return array.reshape(shape)


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


def tensor_to_bytes(datatype: str, data: np.ndarray) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in data.ravel():
            item = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            parts.append(struct.pack("<I", len(item)) + item)
        return b"".join(parts)
    return np.ascontiguousarray(data, dtype=NUMPY_DTYPES[datatype].newbyteorder("<")).tobytes()


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype for a prediction array (object/str arrays are BYTES)."""
    for datatype, dtype in NUMPY_DTYPES.items():
        if datatype != "BYTES" and array.dtype == dtype:
            return datatype
    return "BYTES"
