"""V2 gRPC against the real server: kserve.InferenceGRPCClient, the raw KServe stub, and
tritonclient.grpc (in a subprocess: it cannot share a process with kserve's protobufs)."""

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
TRITON_CALLS = Path(__file__).parents[1] / "support" / "tritonclient_grpc_calls.py"


@pytest.fixture(scope="module")
def triton_report(served_model):
    out = subprocess.run(
        [sys.executable, str(TRITON_CALLS), served_model.grpc_target, "iris"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_tritonclient_health_and_metadata(triton_report):
    assert triton_report["live"] and triton_report["ready"] and triton_report["model_ready"]
    metadata = triton_report["metadata"]
    assert metadata["platform"] == "sklearn"
    assert [i["name"] for i in metadata["inputs"]] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert {o["name"] for o in metadata["outputs"]} == {"predict", "predict_proba", "label"}


def test_tritonclient_infer(triton_report):
    result = triton_report["fp32"]
    assert result["status"] == "OK" and result["id"] == "r1" and result["model_version"] == "1"
    assert result["outputs"]["predict"] == [0, 2]
    assert result["outputs"]["label"] == ["setosa", "virginica"]
    assert np.array(result["outputs"]["predict_proba"]).shape == (2, 3)
    assert list(triton_report["fp64_default_outputs"]["outputs"]) == ["predict"]


@pytest.mark.parametrize(
    "case,message",
    [("too_few_features", "expects 4"), ("bytes_for_numeric", "BYTES"), ("nan", "NaN")],
)
def test_tritonclient_bad_input_is_invalid_argument(triton_report, case, message):
    assert triton_report[case]["status"] == "StatusCode.INVALID_ARGUMENT"
    assert message in triton_report[case]["message"]


def test_tritonclient_unknown_model_and_recovery(triton_report):
    assert triton_report["unknown_model"]["status"] == "StatusCode.NOT_FOUND"
    assert triton_report["after_errors"]["outputs"]["predict"] == [0]


def _kserve_grpc(served, action):
    async def call():
        client = InferenceGRPCClient(served.grpc_target)
        try:
            return await action(client)
        finally:
            await client.close()

    return asyncio.run(call())


def test_kserve_grpc_client_ready_and_infer(served_model):
    async def action(client):
        tensor = InferInput("input-0", [2, 4], "FP32")
        tensor.set_data_from_numpy(ROWS.astype(np.float32))
        request = InferRequest("iris", [tensor], request_id="k1")
        return await client.is_server_ready(), await client.is_model_ready("iris"), await client.infer(request)

    server_ready, model_ready, response = _kserve_grpc(served_model, action)
    assert server_ready is True and model_ready is True
    assert response.outputs[0].name == "predict"
    assert response.outputs[0].as_numpy().tolist() == [0, 2]


def test_kserve_grpc_client_bad_input(served_model):
    async def action(client):
        tensor = InferInput("input-0", [1, 5], "FP64")
        tensor.set_data_from_numpy(np.zeros((1, 5)))
        return await client.infer(InferRequest("iris", [tensor]))

    with pytest.raises(grpc.aio.AioRpcError) as error:
        _kserve_grpc(served_model, action)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expects 4" in error.value.details()


def _raw_infer(served, **tensor):
    with grpc.insecure_channel(served.grpc_target) as channel:
        request = pb.ModelInferRequest(model_name="iris", inputs=[pb.ModelInferRequest.InferInputTensor(**tensor)])
        return GRPCInferenceServiceStub(channel).ModelInfer(request)


def test_raw_stub_typed_contents_and_metadata(served_model):
    response = _raw_infer(
        served_model, name="x", datatype="FP64", shape=[1, 4], contents=pb.InferTensorContents(fp64_contents=ROWS[0])
    )
    assert response.model_name == "iris" and response.outputs[0].name == "predict"
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [0]
    with grpc.insecure_channel(served_model.grpc_target) as channel:
        metadata = GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name="iris"))
    assert metadata.inputs[0].name == "sepal_length" and list(metadata.outputs[2].shape) == [-1, 3]


@pytest.mark.parametrize(
    "tensor,message",
    [
        (
            {
                "name": "x",
                "datatype": "FP64",
                "shape": [-1, 4],
                "contents": pb.InferTensorContents(fp64_contents=[1.0] * 4),
            },
            "negative",
        ),
        (
            {
                "name": "x",
                "datatype": "FP64",
                "shape": [2, 4],
                "contents": pb.InferTensorContents(fp64_contents=[1.0] * 4),
            },
            "needs 8 values",
        ),
        ({"name": "x", "datatype": "FP99", "shape": [1, 4]}, "unknown datatype"),
    ],
)
def test_raw_stub_malformed_tensor_is_invalid_argument(served_model, tensor, message):
    with pytest.raises(grpc.RpcError) as error:
        _raw_infer(served_model, **tensor)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.value.details()


def test_raw_stub_unknown_model_metadata_is_not_found(served_model):
    with grpc.insecure_channel(served_model.grpc_target) as channel, pytest.raises(grpc.RpcError) as error:
        GRPCInferenceServiceStub(channel).ModelMetadata(pb.ModelMetadataRequest(name="nope"))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
