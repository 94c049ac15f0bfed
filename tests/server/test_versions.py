"""Versions and a repository through the real server: versioned routes over REST and gRPC, the
repository API, readiness with several models, and hot reload under load with no failed request."""

from __future__ import annotations

import os
import shutil
import threading
import time

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from model_server.core.repository import write_complete_file
from model_server.demo import publish_version, write_demo_model
from tests.support.metrics import scrape, total
from tests.support.servers import start_server

ROW = [5.1, 3.5, 1.4, 0.2]
V2 = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": ROW}]}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    return write_demo_model(root / "v1", 1), write_demo_model(root / "v2", 2)


@pytest.fixture(scope="module")
def three_versions(demos, tmp_path_factory):
    versions = tmp_path_factory.mktemp("iris-versions") / "iris"
    versions.mkdir()
    for version in (1, 2, 3):
        publish_version(versions, version, demos[version % 2 == 0])
    return versions


def grpc_infer(served, version: str):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP64", shape=[1, 4], contents=pb.InferTensorContents(fp64_contents=ROW)
    )
    with grpc.insecure_channel(served.grpc_target) as channel:
        request = pb.ModelInferRequest(model_name="iris", model_version=version, inputs=[tensor])
        return GRPCInferenceServiceStub(channel).ModelInfer(request)


def test_every_served_version_answers_on_rest_and_grpc(three_versions):
    with start_server(three_versions, "iris", "--version_policy=specific:1,3") as served:
        url = served.http_url
        metadata = httpx.get(f"{url}/v2/models/iris").json()
        assert metadata["versions"] == ["1", "3"]
        for version in ("1", "3"):
            rest = httpx.post(f"{url}/v2/models/iris/versions/{version}/infer", json=V2).json()
            assert rest["model_version"] == version
            assert grpc_infer(served, version).model_version == version
            assert httpx.get(f"{url}/v2/models/iris/versions/{version}/ready").status_code == 200
            assert httpx.get(f"{url}/v2/models/iris/versions/{version}").json()["versions"] == ["1", "3"]
        assert httpx.post(f"{url}/v2/models/iris/infer", json=V2).json()["model_version"] == "3"  # the newest
        assert httpx.post(f"{url}/v1/models/iris:predict", json={"instances": [ROW]}).status_code == 200
        missing = httpx.post(f"{url}/v2/models/iris/versions/2/infer", json=V2)
        assert missing.status_code == 404 and missing.json()["error"] == "model iris has version 1, 3, not 2"
        with pytest.raises(grpc.RpcError) as error:
            grpc_infer(served, "2")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        text = scrape(url)
        for version in ("1", "3"):
            assert total(text, "model_server_requests_total", model="iris", version=version, code="200") >= 2


def test_a_repository_of_models(three_versions, demos, tmp_path):
    root = tmp_path / "repository"
    root.mkdir()
    shutil.copytree(three_versions, root / "iris")
    shutil.copytree(demos[0], root / "flowers")
    with start_server(root, "unused", f"--model_repository={root}") as served:
        url = served.http_url
        index = httpx.post(f"{url}/v2/repository/index").json()  # on by default in a repository
        assert [(e["name"], e["version"], e["state"]) for e in index] == [
            ("flowers", "1", "READY"),
            ("iris", "3", "READY"),
        ]
        for name in ("iris", "flowers"):
            assert httpx.post(f"{url}/v2/models/{name}/infer", json=V2).status_code == 200
        assert httpx.post(f"{url}/v2/repository/models/flowers/unload").json() == {"name": "flowers", "unload": True}
        assert httpx.post(f"{url}/v2/models/flowers/infer", json=V2).status_code == 404
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200  # the models still served are ready
        assert httpx.get(f"{url}/v2/models/flowers/ready").status_code == 404
        states = {e["name"]: e["state"] for e in httpx.post(f"{url}/v2/repository/index").json()}
        assert states == {"flowers": "UNAVAILABLE", "iris": "READY"}
        # What KServe's multi-model agent does: put a new model directory there, then load it.
        shutil.copytree(demos[1], root / "roses")
        assert httpx.post(f"{url}/v2/repository/models/roses/load").status_code == 200
        assert httpx.post(f"{url}/v2/models/roses/infer", json=V2).json()["model_version"] == "2"
        assert httpx.post(f"{url}/v2/repository/models/flowers/load").status_code == 200
        assert httpx.post(f"{url}/v2/models/flowers/infer", json=V2).status_code == 200
        refused = httpx.post(f"{url}/v2/repository/models/tulips/load")
        assert refused.status_code == 404


def test_hot_reload_under_load_fails_no_request(demos, tmp_path):
    versions = tmp_path / "iris"
    versions.mkdir()
    publish_version(versions, 1, demos[0])
    with start_server(versions, "iris", "--watch=true", "--watch_interval_seconds=0.2") as served:
        url = f"{served.http_url}/v2/models/iris/infer"
        stop, answers, failures = threading.Event(), [], []

        def load():
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    response = client.post(url, json=V2)
                    if response.status_code == 200:
                        answers.append(response.json()["model_version"])
                    else:
                        failures.append(response.text)

        threads = [threading.Thread(target=load) for _ in range(16)]
        for thread in threads:
            thread.start()
        try:
            for version in range(2, 7):
                publish_version(versions, version, demos[version % 2 == 0])
                deadline = time.monotonic() + 15
                while not answers or answers[-1] != str(version):
                    assert time.monotonic() < deadline, f"version {version} never took traffic: {served.log()[-2000:]}"
                    time.sleep(0.05)
            # A broken version: refused, the last good one keeps serving.
            broken = versions.parent / ".staging-broken"
            broken.mkdir()
            (broken / "model.joblib").write_bytes(b"half a pickle")
            write_complete_file(broken)
            os.rename(broken, versions / "7")
            time.sleep(1.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures == [], f"{len(failures)} failed requests during swaps: {failures[:3]}"
        assert len(answers) > 500 and answers[-1] == "6"
        served_versions = [int(v) for v in dict.fromkeys(answers)]
        assert served_versions == sorted(served_versions), "a request never went back to an older version"
        index = httpx.post(f"{served.http_url}/v2/repository/index")
        assert index.status_code == 404  # single-model mode: the repository API is off by default
        assert total(scrape(served.http_url), "model_server_model_load_failures_total", model="iris") == 1
        assert "model iris version 7 refused" in served.log()
