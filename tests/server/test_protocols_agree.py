"""REST and gRPC go through the same seam: the same versions, errors and counted statuses."""

import grpc
import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.support.metrics import scrape, total

ROW = [5.1, 3.5, 1.4, 0.2]
CODES = ("200", "400", "404", "OK")


def grpc_infer(served, version="", row=ROW):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP64", shape=[1, len(row)], contents=pb.InferTensorContents(fp64_contents=row)
    )
    request = pb.ModelInferRequest(model_name="iris", model_version=version, inputs=[tensor])
    with grpc.insecure_channel(served.grpc_target) as channel:
        return GRPCInferenceServiceStub(channel).ModelInfer(request)


def rest_infer(served, version=None, row=ROW):
    path = f"/v2/models/iris/versions/{version}/infer" if version else "/v2/models/iris/infer"
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, len(row)], "data": row}]}
    return httpx.post(served.http_url + path, json=body)


def counted(served) -> dict[tuple[str, str], float]:
    text = scrape(served.http_url)
    return {
        (p, c): total(text, "model_server_requests_total", protocol=p, code=c) for p in ("grpc", "v2") for c in CODES
    }


def test_grpc_honours_model_version_like_rest(served_model):
    response = grpc_infer(served_model, version="1")
    assert response.model_version == "1"
    assert np.frombuffer(response.raw_output_contents[0], dtype="<i8").tolist() == [0]
    assert rest_infer(served_model, version="1").json()["outputs"][0]["data"] == [0]
    with pytest.raises(grpc.RpcError) as error:
        grpc_infer(served_model, version="9")
    rest = rest_infer(served_model, version="9")
    assert error.value.code() == grpc.StatusCode.NOT_FOUND and rest.status_code == 404
    assert error.value.details() == rest.json()["error"] == "model iris has version 1, not 9"


def test_both_protocols_count_with_one_vocabulary(served_model):
    before = counted(served_model)
    grpc_infer(served_model)
    rest_infer(served_model)
    with pytest.raises(grpc.RpcError):
        grpc_infer(served_model, row=[1.0, 2.0])
    assert rest_infer(served_model, row=[1.0, 2.0]).status_code == 400
    with pytest.raises(grpc.RpcError):
        grpc_infer(served_model, version="9")
    after = counted(served_model)
    sent = {("grpc", "200"): 1, ("grpc", "400"): 1, ("grpc", "404"): 1, ("v2", "200"): 1, ("v2", "400"): 1}
    for key, n in sent.items():
        assert after[key] == before.get(key, 0) + n, key
    assert total(scrape(served_model.http_url), "model_server_requests_total", code="OK") == 0
