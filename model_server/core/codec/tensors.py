"""Tensors on the wire, the same in every V2 format: datatypes, shapes, JSON data and raw bytes
(little-endian; BYTES length-prefixed), with the range and size checks that name the tensor at
fault. And JSON itself (``loads_json``)."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import orjson

from ..errors import InvalidInput

# Estimators take [N, F] or [N] tensors, ONNX graphs what they declare (an image batch is 4-D, a
# video 5-D); past this a shape is only a client's mistake, and numpy cannot hold one past 64.
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
        check_range(name, datatype, array)
        target = NUMPY_DTYPES[datatype]
        if array.dtype == target:
            array = array.ravel()
        else:
            with np.errstate(over="ignore"):  # a float past FP16/FP32's range is inf: the schema refuses it
                array = array.ravel().astype(target, copy=False)
    return array_of_size(name, shape, array)


def check_range(name: str, datatype: str, array: np.ndarray) -> None:
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
    return array_of_size(name, shape, array)


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
    if type(shape) is list and len(shape) <= MAX_DIMS and all(type(d) is int and d >= 0 for d in shape):
        return shape  # the common case in one pass; anything else is looked at below
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInput(f"input '{name}': shape must be a list of integers, got {shape!r}")
    if len(shape) > MAX_DIMS:
        shown = f"[{', '.join(map(str, shape[:4]))}, ...]"
        raise InvalidInput(
            f"input '{name}': shape {shown} has {len(shape)} dimensions (at most {MAX_DIMS}); "
            "send the shape the model's metadata declares"
        )
    if any(d < 0 for d in shape):
        raise InvalidInput(f"input '{name}': shape {shape} has a negative dimension")
    return shape


def array_of_size(name: str, shape: list[int], array: np.ndarray) -> np.ndarray:
    expected = math.prod(shape)
    if array.size != expected:
        raise InvalidInput(f"input '{name}': shape {shape} needs {expected} values, data has {array.size}")
    return array.reshape(shape)


def json_object(value: object, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be an object")
    return value


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
