"""One model, four wire formats: send the same inputs over V1, V2 JSON, V2 binary and gRPC with
real clients, and get back plain numpy arrays to compare with the estimator's own answers.

``inputs`` is a list of ``(name, datatype, array)``: one [N, F] tensor, or one [N] tensor per
feature. V1 gets the same data as rows (or records, when every tensor is one feature).
"""

from __future__ import annotations

import grpc
import httpx
import numpy as np
import tritonclient.http as tritonhttp  # the http client has no protobufs: it can share a process with kserve
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from model_server.core.codec import NUMPY_DTYPES, tensor_to_bytes

PROTOCOLS = ("v1", "v2-json", "v2-binary", "grpc")
V1_KEYS = {"predict": "predictions", "predict_proba": "probabilities", "label": "labels"}


def infer(served, protocol: str, inputs: list, outputs: list[str]) -> dict[str, np.ndarray]:
    return {"v1": v1, "v2-json": v2_json, "v2-binary": v2_binary, "grpc": grpc_infer}[protocol](served, inputs, outputs)


def v1(served, inputs, outputs):
    if len(inputs) == 1 and inputs[0][2].ndim == 1:  # documents: plain strings
        instances = list(inputs[0][2])
    elif len(inputs) == 1:
        instances = inputs[0][2].tolist()
    else:
        columns = [(name, array.tolist()) for name, _, array in inputs]
        instances = [{name: values[i] for name, values in columns} for i in range(len(columns[0][1]))]
    parameters = {"probabilities": "predict_proba" in outputs, "labels": "label" in outputs}
    response = httpx.post(
        f"{served.http_url}/v1/models/{served.model_name}:predict",
        content=_json({"instances": instances, "parameters": parameters}),
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return {name: np.array(body[V1_KEYS[name]]) for name in outputs}


def _json(doc) -> bytes:
    import json

    return json.dumps(doc).encode()  # Python's encoder: NaN becomes the bare NaN token, as clients send it


def _triton(served, inputs, outputs, binary: bool):
    client = tritonhttp.InferenceServerClient(served.http_url.removeprefix("http://"), network_timeout=30)
    try:
        tensors = []
        for name, datatype, array in inputs:
            tensor = tritonhttp.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array, binary_data=binary)
            tensors.append(tensor)
        requested = [tritonhttp.InferRequestedOutput(name, binary_data=binary) for name in outputs]
        result = client.infer(served.model_name, tensors, outputs=requested)
        return {name: _text(result.as_numpy(name)) for name in outputs}
    finally:
        client.close()


def v2_json(served, inputs, outputs):
    return _triton(served, inputs, outputs, binary=False)


def v2_binary(served, inputs, outputs):
    return _triton(served, inputs, outputs, binary=True)


def grpc_infer(served, inputs, outputs):
    request = pb.ModelInferRequest(
        model_name=served.model_name,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=list(array.shape))
            for name, datatype, array in inputs
        ],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=name) for name in outputs],
        raw_input_contents=[tensor_to_bytes(datatype, array) for _, datatype, array in inputs],
    )
    with grpc.insecure_channel(served.grpc_target) as channel:
        response = GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    result = {}
    for spec, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        result[spec.name] = _decode_raw(spec.datatype, list(spec.shape), raw)
    return result


def _decode_raw(datatype: str, shape: list[int], raw: bytes) -> np.ndarray:
    if datatype != "BYTES":
        return np.frombuffer(raw, dtype=NUMPY_DTYPES[datatype].newbyteorder("<")).reshape(shape)
    items, pos = [], 0
    while pos < len(raw):
        n = int.from_bytes(raw[pos : pos + 4], "little")
        items.append(raw[pos + 4 : pos + 4 + n].decode())
        pos += 4 + n
    return np.array(items, dtype=object).reshape(shape)


def _text(array: np.ndarray) -> np.ndarray:
    if array.dtype == object:
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(array)
    return array
