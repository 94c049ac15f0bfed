"""Wire formats, one module each: V1 JSON (``v1``), V2 REST JSON with the binary tensor extension
(``v2_rest``), CloudEvents (``cloudevent``), over the request types (``types``) and the tensor
encodings all V2 formats share (``tensors``). V2 gRPC is decoded and encoded beside its servicer
(``kserve/grpc.py``): it needs KServe's protobuf classes.

Decoding turns bytes into a ``V1Request`` (rows) or a ``V2Request`` (``Tensor`` objects: numpy
arrays of the declared shape); ``core/schema.py`` then checks them against the model. Encoding turns
an ``InferenceResponse`` back into bytes, with the request's id and binary-output choice taken
from the decoded request by the transport (the model never sees them). Decoding errors are client errors
(``InvalidInput``: HTTP 400 / gRPC INVALID_ARGUMENT) that name the tensor at fault.

Why not KServe's own codec: it parses every V2 REST body through pydantic (slow), rejects plain
JSON requests from ``tritonclient.http`` with ``binary_data=False`` ("received byte inputs, but the
inference-header-content-length header is missing"), and turns malformed tensors into 500s.
"""

from .tensors import MAX_DIMS, NUMPY_DTYPES, datatype_of, loads_json, tensor_from_json, tensor_to_bytes
from .types import LABEL, PREDICT, PROBA, InferenceResponse, Output, Tensor, V1Request, V2Request
from .v1 import decode_v1, encode_v1, v1_response
from .v2_rest import INFERENCE_HEADER_LENGTH, decode_v2_rest, encode_v2_rest

__all__ = [
    "INFERENCE_HEADER_LENGTH",
    "LABEL",
    "MAX_DIMS",
    "NUMPY_DTYPES",
    "PREDICT",
    "PROBA",
    "InferenceResponse",
    "Output",
    "Tensor",
    "V1Request",
    "V2Request",
    "datatype_of",
    "decode_v1",
    "decode_v2_rest",
    "encode_v1",
    "encode_v2_rest",
    "loads_json",
    "tensor_from_json",
    "tensor_to_bytes",
    "v1_response",
]
