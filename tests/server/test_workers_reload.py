"""Versions and hot reload with ``--workers 2``: real servers, real clients (httpx, gRPC).

The supervisor keeps the repository and replaces the workers with fresh forks when what is
served changes (kserve/reloader.py). What each worker served is read per pid from
prometheus_client's own files (``counter_<pid>.db``, as in test_workers.py): the version label of
``model_server_requests_total`` says which version each worker answered with.
"""

from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from prometheus_client.mmap_dict import MmapedDict

from model_server.core.repository import write_complete_file
from model_server.demo import publish_version, write_demo_model
from tests.server.test_workers import wait_for_workers, workers_of
from tests.support.servers import start_server

ROW = [5.1, 3.5, 1.4, 0.2]
V2 = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": ROW}]}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos")
    return write_demo_model(root / "v1", 1), write_demo_model(root / "v2", 2)


def publish(versions: Path, version: int, source: Path) -> None:
    """A new version directory, marked complete: loadable at the next look."""
    write_complete_file(publish_version(versions, version, source))


def served_by_pid(metrics_dir: Path, model: str) -> dict[int, dict[str, float]]:
    """Successful inference requests on ``model``, per worker pid, by version."""
    counts: dict[int, dict[str, float]] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, sample, labels, _ = json.loads(key)
            if sample == "model_server_requests_total" and labels["model"] == model and labels["code"] == "200":
                by_version = counts.setdefault(pid, {})
                by_version[labels["version"]] = by_version.get(labels["version"], 0) + value
    return counts


def infer(url: str, model: str = "iris") -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{model}/infer", json=V2, timeout=10)


def until_every_worker_answered(served, metrics_dir: Path, workers: set[int], model="iris", grpc_too=False) -> None:
    """Requests on fresh connections from several threads, until each worker answered some."""
    for _ in range(60):
        with ThreadPoolExecutor(4) as pool:
            assert all(r.status_code == 200 for r in pool.map(lambda _: infer(served.http_url, model), range(4)))
            if grpc_too:
                list(pool.map(lambda _: grpc_infer(served, model), range(4)))
        if set(served_by_pid(metrics_dir, model)) >= workers:
            return
    raise AssertionError(f"not every worker answered: {served_by_pid(metrics_dir, model)}, workers {workers}")


def grpc_infer(served, model: str):
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP64", shape=[1, 4], contents=pb.InferTensorContents(fp64_contents=ROW)
    )
    with grpc.insecure_channel(served.grpc_target) as channel:
        return GRPCInferenceServiceStub(channel).ModelInfer(pb.ModelInferRequest(model_name=model, inputs=[tensor]))


def grpc_repository(served, call: str, model: str):
    with grpc.insecure_channel(served.grpc_target) as channel:
        stub = GRPCInferenceServiceStub(channel)
        if call == "load":
            return stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=model))
        return stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=model))


def indexes_from_fresh_connections(url: str, count: int = 16) -> list:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda _: httpx.post(f"{url}/v2/repository/index", timeout=10).json(), range(count)))


def with_workers(root: Path, tmp_path: Path, *args: str):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    return metrics_dir, start_server(root, "unused", f"--model_repository={root}", "--workers=2", *args, env=env)


def test_load_and_unload_reach_every_worker(demos, tmp_path):
    root = tmp_path / "repository"
    (root / "iris").mkdir(parents=True)
    publish(root / "iris", 1, demos[0])
    metrics_dir, server = with_workers(root, tmp_path)
    with server as served:
        url, pid = served.http_url, served.process.pid
        first = wait_for_workers(pid, 2)
        until_every_worker_answered(served, metrics_dir, first)

        # A new version, loaded through one worker: every worker serves it once the call returned.
        publish(root / "iris", 2, demos[1])
        loaded = httpx.post(f"{url}/v2/repository/models/iris/load", timeout=60)
        assert loaded.status_code == 200, loaded.text
        second = wait_for_workers(pid, 2)
        assert not second & first, "every worker was replaced by a fresh fork"
        indexes = indexes_from_fresh_connections(url)
        assert all(index == indexes[0] for index in indexes)
        assert {(e["version"], e["state"]) for e in indexes[0] if e["name"] == "iris"} == {
            ("1", "UNAVAILABLE"),
            ("2", "READY"),
        }
        until_every_worker_answered(served, metrics_dir, second, grpc_too=True)
        by_pid = served_by_pid(metrics_dir, "iris")
        for worker in second:
            assert set(by_pid[worker]) == {"2"}, f"worker {worker} answered {by_pid[worker]}"
        for worker in first:
            assert set(by_pid[worker]) == {"1"}

        # A second model, loaded over gRPC, then unloaded over REST.
        shutil.copytree(demos[0], root / "flowers")
        assert grpc_repository(served, "load", "flowers").isLoaded
        third = wait_for_workers(pid, 2)
        assert not third & second
        until_every_worker_answered(served, metrics_dir, third, model="flowers")
        assert httpx.post(f"{url}/v2/repository/models/flowers/unload", timeout=60).json() == {
            "name": "flowers",
            "unload": True,
        }
        fourth = wait_for_workers(pid, 2)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: infer(url, "flowers").status_code, range(16)))
        assert answers == [404] * 16, "no worker serves the unloaded model"
        indexes = indexes_from_fresh_connections(url)
        assert all(index == indexes[0] for index in indexes)
        assert {e["state"] for e in indexes[0] if e["name"] == "flowers"} == {"UNAVAILABLE"}
        until_every_worker_answered(served, metrics_dir, fourth)  # iris, on every worker
        # A model no worker serves any more: NOT_FOUND over gRPC, from the supervisor; nothing replaced.
        with pytest.raises(grpc.RpcError) as error:
            grpc_repository(served, "unload", "flowers")
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert workers_of(pid) == fourth
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200


def test_a_failed_load_changes_no_worker(demos, tmp_path):
    root = tmp_path / "repository"
    (root / "iris").mkdir(parents=True)
    publish(root / "iris", 1, demos[0])
    (root / "broken").mkdir()
    (root / "broken" / "model.joblib").write_bytes(b"half a pickle")
    metrics_dir, server = with_workers(root, tmp_path)
    with server as served:
        url, pid = served.http_url, served.process.pid
        workers = wait_for_workers(pid, 2)
        before = indexes_from_fresh_connections(url, 4)[0]
        refused = httpx.post(f"{url}/v2/repository/models/broken/load", timeout=60)
        assert refused.status_code == 400 and "model.joblib" in refused.json()["error"], refused.text
        with pytest.raises(grpc.RpcError) as error:
            grpc_repository(served, "load", "broken")
        assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        missing = httpx.post(f"{url}/v2/repository/models/tulips/load", timeout=60)
        assert missing.status_code == 404
        # A version that fails its check: refused, the old one keeps serving, nothing replaced.
        bad = publish_version(root / "iris", 2, demos[0])
        (bad / "model.joblib").write_bytes(b"not a model either")
        write_complete_file(bad)
        assert httpx.post(f"{url}/v2/repository/models/iris/load", timeout=60).status_code == 200
        time.sleep(0.5)
        assert workers_of(pid) == workers, "no worker was replaced"
        indexes = indexes_from_fresh_connections(url)
        assert all(index == indexes[0] for index in indexes), "the index is the supervisor's, the same everywhere"
        reasons = {(e["name"], e.get("version")): e.get("reason", "") for e in indexes[0]}
        assert "model.joblib" in reasons[("broken", "?")]
        assert "model.joblib" in reasons[("iris", "2")]
        assert ("iris", "1") in reasons and indexes[0] != before
        until_every_worker_answered(served, metrics_dir, workers)
        assert {v for counts in served_by_pid(metrics_dir, "iris").values() for v in counts} == {"1"}


def test_watch_brings_a_new_version_to_every_worker(demos, tmp_path):
    versions = tmp_path / "iris"
    versions.mkdir()
    publish_version(versions, 1, demos[0])
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    args = ("--workers=2", "--watch", "--watch_interval_seconds=0.2")
    with start_server(versions, "iris", *args, env=env) as served:
        pid = served.process.pid
        first = wait_for_workers(pid, 2)
        publish_version(versions, 2, demos[1])  # no _COMPLETE: complete once it looked the same twice
        deadline = time.monotonic() + 30
        while workers_of(pid) & first or len(workers_of(pid)) != 2:
            assert time.monotonic() < deadline, served.log()[-3000:]
            time.sleep(0.1)
        second = workers_of(pid)
        until_every_worker_answered(served, metrics_dir, second)
        by_pid = served_by_pid(metrics_dir, "iris")
        assert all(set(by_pid[worker]) == {"2"} for worker in second), by_pid
        assert "model iris serves versions 2" in served.log()
        # SIGTERM stops the supervisor (its loader and control threads too) and every worker: exit 0.
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(30) == 0
        assert not any(Path(f"/proc/{worker}").exists() for worker in second)


def test_no_request_fails_while_workers_are_replaced(demos, tmp_path):
    versions = tmp_path / "iris"
    versions.mkdir()
    publish_version(versions, 1, demos[0])
    args = ("--workers=2", "--watch", "--watch_interval_seconds=0.2")
    with start_server(versions, "iris", *args) as served:
        pid = served.process.pid
        wait_for_workers(pid, 2)
        url = f"{served.http_url}/v2/models/iris/infer"
        stop, answers, failures = threading.Event(), [], []

        def send(keep_alive: bool):
            client = httpx.Client(timeout=10) if keep_alive else httpx
            while not stop.is_set():
                try:
                    response = client.post(url, json=V2)
                except httpx.TransportError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                if response.status_code == 200:
                    answers.append(response.json()["model_version"])
                else:
                    failures.append(f"{response.status_code} {response.text}")

        def send_grpc():
            tensor = pb.ModelInferRequest.InferInputTensor(
                name="x", datatype="FP64", shape=[1, 4], contents=pb.InferTensorContents(fp64_contents=ROW)
            )
            with grpc.insecure_channel(served.grpc_target) as channel:  # one channel: its connection moves on
                stub = GRPCInferenceServiceStub(channel)
                while not stop.is_set():
                    try:
                        stub.ModelInfer(pb.ModelInferRequest(model_name="iris", inputs=[tensor]), timeout=10)
                        grpc_answers.append(1)
                    except grpc.RpcError as exc:
                        grpc_failures.append(exc.code())

        grpc_answers, grpc_failures = [], []
        threads = [threading.Thread(target=send, args=(i % 2 == 0,)) for i in range(6)]
        threads += [threading.Thread(target=send_grpc) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            for version in range(2, 5):
                publish(versions, version, demos[version % 2 == 0])
                deadline = time.monotonic() + 30
                while not answers or answers[-1] != str(version):
                    assert time.monotonic() < deadline, f"version {version} never took traffic: {served.log()[-3000:]}"
                    time.sleep(0.05)
            # The load goes on until the last roll-over is over: 2 workers x 3 versions replaced.
            deadline = time.monotonic() + 30
            while served.log().count("replaced (pid") < 6:
                assert time.monotonic() < deadline, served.log()[-3000:]
                time.sleep(0.1)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert failures == [], failures[:5]  # REST: not one
        assert {"1", "2", "3", "4"} <= set(answers)
        assert len(answers) > 100 and len(grpc_answers) > 100
        # gRPC: a replaced worker's server.stop() sends GOAWAY and cancels the calls already on
        # their way to it that its handlers had not taken yet (gRPC's own shutdown; there is no
        # GOAWAY without stopping). At most one such call per client and replaced worker
        # (docs/server.md says so); a client retrying CANCELLED sees none.
        assert set(grpc_failures) <= {grpc.StatusCode.CANCELLED}, grpc_failures
        assert len(grpc_failures) <= 2 * 6, grpc_failures


def test_concurrent_loads_through_different_workers_all_answer(demos, tmp_path):
    """Calls queue in the supervisor, one roll-over each; a worker retired by an earlier
    roll-over still answers the call it forwarded before."""
    root = tmp_path / "repository"
    (root / "iris").mkdir(parents=True)
    publish(root / "iris", 1, demos[0])
    _, server = with_workers(root, tmp_path)
    with server as served:
        url, pid = served.http_url, served.process.pid
        wait_for_workers(pid, 2)
        names = ["a", "b", "c"]
        for number, name in enumerate(names):
            shutil.copytree(demos[number % 2], root / name)
        with ThreadPoolExecutor(3) as pool:
            loads = list(pool.map(lambda n: httpx.post(f"{url}/v2/repository/models/{n}/load", timeout=60), names))
        assert [answer.status_code for answer in loads] == [200, 200, 200], [answer.text for answer in loads]
        wait_for_workers(pid, 2)
        with ThreadPoolExecutor(4) as pool:
            ready = list(pool.map(lambda i: httpx.get(f"{url}/v2/models/{names[i % 3]}/ready").status_code, range(24)))
        assert ready == [200] * 24
        assert served.log().count("replaced (pid") == 6  # one roll-over of 2 workers per call
