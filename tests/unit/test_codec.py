"""Codec unit tests: V2 REST JSON and binary, V2 gRPC protobuf; hypothesis round trips."""

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from model_server.core.codec import (
    INFERENCE_HEADER_LENGTH,
    NUMPY_DTYPES,
    InferenceResponse,
    Output,
    V2Request,
    decode_v2_rest,
    encode_v2_rest,
    tensor_from_json,
    tensor_to_bytes,
)
from model_server.core.errors import InvalidInput
from model_server.kserve.grpc import decode_v2_grpc, encode_v2_grpc

NUMERIC = [d for d in NUMPY_DTYPES if d != "BYTES"]


def arrays(datatype):
    shape = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5)
    if datatype == "BYTES":
        return hnp.arrays(object, shape, elements=st.text(max_size=8))
    dtype = NUMPY_DTYPES[datatype]
    elements = None
    if dtype.kind == "f":
        elements = st.floats(width=dtype.itemsize * 8, allow_nan=False, allow_infinity=False)
    return hnp.arrays(dtype, shape, elements=elements)


def rest_body(name, datatype, array, binary):
    spec = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if not binary:
        spec["data"] = array.ravel().tolist()
        return orjson.dumps({"inputs": [spec]}), None
    raw = tensor_to_bytes(datatype, array)
    spec["parameters"] = {"binary_data_size": len(raw)}
    header = orjson.dumps({"inputs": [spec]})
    return header + raw, str(len(header))


@settings(max_examples=60, deadline=None)
@given(datatype=st.sampled_from(list(NUMPY_DTYPES)), data=st.data(), binary=st.booleans())
def test_rest_input_round_trip(datatype, data, binary):
    array = data.draw(arrays(datatype))
    body, header_length = rest_body("t", datatype, array, binary)
    (tensor,) = decode_v2_rest(body, header_length).inputs
    assert tensor.datatype == datatype and tensor.data.shape == array.shape
    decoded = tensor.data
    if datatype == "BYTES" and binary:
        decoded = np.vectorize(lambda b: b.decode(), otypes=[object])(decoded) if decoded.size else decoded
    if datatype == "FP16" and not binary:  # JSON carries FP16 as the nearest double: compare as FP16
        decoded = decoded.astype(np.float16)
    assert decoded.tolist() == array.tolist()


@settings(max_examples=60, deadline=None)
@given(datatype=st.sampled_from(list(NUMPY_DTYPES)), data=st.data(), binary=st.booleans())
def test_rest_output_round_trip(datatype, data, binary):
    array = data.draw(arrays(datatype))
    request = V2Request("id-1", [], binary_outputs={"out"} if binary else set())
    body, headers = encode_v2_rest(request, InferenceResponse("m", "3", [Output("out", datatype, array)]))
    n = int(headers.get(INFERENCE_HEADER_LENGTH, len(body)))
    doc = orjson.loads(body[:n])
    assert doc["model_name"] == "m" and doc["model_version"] == "3" and doc["id"] == "id-1"
    (spec,) = doc["outputs"]
    assert spec["shape"] == list(array.shape) and spec["datatype"] == datatype
    if binary:
        assert headers["content-type"] == "application/octet-stream"
        assert body[n:] == tensor_to_bytes(datatype, array)
    else:
        assert spec["data"] == array.ravel().tolist()


@settings(max_examples=60, deadline=None)
@given(datatype=st.sampled_from(list(NUMPY_DTYPES)), data=st.data(), raw=st.booleans())
def test_grpc_round_trip(datatype, data, raw):
    array = data.draw(arrays(datatype))
    if datatype == "FP16":
        raw = True  # FP16 has no typed contents field
    spec = pb.ModelInferRequest.InferInputTensor(name="t", datatype=datatype, shape=list(array.shape))
    request = pb.ModelInferRequest(model_name="m", inputs=[spec])
    if raw:
        request.raw_input_contents.append(tensor_to_bytes(datatype, array))
    else:
        values = [v.encode() for v in array.ravel()] if datatype == "BYTES" else array.ravel().tolist()
        field = {
            "BOOL": "bool",
            "INT64": "int64",
            "UINT64": "uint64",
            "FP32": "fp32",
            "FP64": "fp64",
            "BYTES": "bytes",
        }.get(datatype, "int" if datatype.startswith("INT") else "uint")
        getattr(request.inputs[0].contents, f"{field}_contents").extend(values)
    (tensor,) = decode_v2_grpc(request).inputs
    expected = array.tolist()
    if datatype == "BYTES":  # gRPC BYTES arrive as bytes
        expected = np.array([v.encode() for v in array.ravel()], dtype=object).reshape(array.shape).tolist()
    assert tensor.data.shape == array.shape and tensor.data.tolist() == expected
    response = encode_v2_grpc(V2Request("r", []), InferenceResponse("m", "1", [Output("o", datatype, array)]))
    assert list(response.outputs[0].shape) == list(array.shape)
    assert response.raw_output_contents[0] == tensor_to_bytes(datatype, array)


def test_requested_outputs_and_binary_flags():
    body = orjson.dumps(
        {
            "id": 42,
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [1.0]}],
            "outputs": [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}],
        }
    )
    request = decode_v2_rest(body, None)
    assert request.id == "42" and request.outputs == ["a", "b"] and request.binary_outputs == {"a"}
    everything = decode_v2_rest(
        orjson.dumps(
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}],
                "parameters": {"binary_data_output": True},
            }
        ),
        None,
    )
    assert everything.outputs is None and everything.binary_outputs == {"*"}


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0]}, "needs 2 values"),
        ({"name": "x", "datatype": "INT8", "shape": [1], "data": [True]}, "holds booleans"),
        ({"name": "x", "datatype": "BOOL", "shape": [1], "data": [1]}, "is BOOL"),
        ({"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}, "must be strings"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0], "parameters": 3}, "must be an object"),
        ({"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": -1}}, "non-negative"),
        ({"name": 5, "datatype": "FP32", "shape": [1], "data": [1.0]}, 'string "name"'),
        ({"name": "x", "datatype": "FP32", "shape": [1]}, 'no "data"'),
        ({"name": "x", "datatype": "FP32", "shape": [True], "data": [1.0]}, "list of integers"),
    ],
)
def test_rest_tensor_errors(spec, message):
    with pytest.raises(InvalidInput) as error:
        decode_v2_rest(orjson.dumps({"inputs": [spec]}), None)
    assert message in str(error.value)


def test_binary_bytes_elements_must_be_whole():
    header = orjson.dumps(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]}
    )
    with pytest.raises(InvalidInput, match="runs past the end"):
        decode_v2_rest(header + b"\x09\x00\x00\x00ab", str(len(header)))


def test_grpc_errors():
    spec = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1])
    with pytest.raises(InvalidInput, match="no inputs"):
        decode_v2_grpc(pb.ModelInferRequest(model_name="m"))
    with pytest.raises(InvalidInput, match="raw_input_contents"):
        decode_v2_grpc(pb.ModelInferRequest(inputs=[spec, spec], raw_input_contents=[b"\0" * 8]))
    with pytest.raises(InvalidInput, match="FP16"):
        decode_v2_grpc(
            pb.ModelInferRequest(inputs=[pb.ModelInferRequest.InferInputTensor(name="h", datatype="FP16", shape=[1])])
        )
    scalar = pb.ModelInferRequest(
        inputs=[
            pb.ModelInferRequest.InferInputTensor(
                name="s", datatype="FP64", shape=[], contents=pb.InferTensorContents(fp64_contents=[2.5])
            )
        ]
    )
    assert decode_v2_grpc(scalar).inputs[0].data.tolist() == 2.5


def test_uint64_past_two_to_the_63_stays_exact():
    # numpy alone would read this list as float64 and lose the low digits (found by the round trip above)
    data = [2**63, 0, 2**64 - 1]
    assert tensor_from_json("t", "UINT64", [3], data).tolist() == data
