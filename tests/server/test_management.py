"""The model repository API (load/unload) is off unless enabled, and can require a bearer token,
over REST and gRPC alike."""

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.support.servers import start_server


def grpc_unload(served, name="iris", token=None):
    metadata = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        return stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name), metadata=metadata)


def test_off_by_default_on_both_protocols(served_model):
    response = httpx.post(f"{served_model.http_url}/v2/repository/models/iris/unload")
    assert response.status_code == 404 and "--repository_api" in response.json()["error"]
    with pytest.raises(grpc.RpcError) as error:
        grpc_unload(served_model)
    assert error.value.code() == grpc.StatusCode.UNIMPLEMENTED and "--repository_api" in error.value.details()
    # Nothing was unloaded.
    assert httpx.get(f"{served_model.http_url}/v2/health/ready").status_code == 200


def test_token_required_when_set(demo_model_dir, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    args = ("--repository_api=true", f"--management_token_file={token_file}")
    with start_server(demo_model_dir, "iris", *args) as served:
        url = f"{served.http_url}/v2/repository/models/iris/unload"
        assert httpx.post(url).status_code == 401
        assert httpx.post(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        with pytest.raises(grpc.RpcError) as error:
            grpc_unload(served, token="nope")
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as error:
            grpc_unload(served, name="nope", token="s3cret")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        missing = httpx.post(
            f"{served.http_url}/v2/repository/models/nope/load", headers={"Authorization": "Bearer s3cret"}
        )
        assert missing.status_code == 404  # KServe answers 503 for a model that does not exist
        assert httpx.get(f"{served.http_url}/v2/health/ready").status_code == 200
        assert grpc_unload(served, token="s3cret").isUnloaded  # KServe's own RPC fails here with a TypeError
        assert httpx.get(f"{served.http_url}/v2/health/ready").status_code == 503
