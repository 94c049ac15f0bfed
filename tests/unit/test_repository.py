"""The model repository in-process: layouts, version policies, completeness, load/unload/index,
refused versions, and a retired version's memory let go."""

from __future__ import annotations

import asyncio
import gc
import shutil
import sys
import threading
import weakref
from pathlib import Path

import pytest

from model_server.core.errors import ArtifactError, ModelNotFound, SettingsError
from model_server.core.predictor import Predictor
from model_server.core.repository import (
    COMPLETE_FILE,
    LOADING_SWITCH_SECONDS,
    ModelRepository,
    VersionPolicy,
    write_complete_file,
)
from model_server.demo import write_demo_model


def load_predictor(path: Path, name: str, version: str | None) -> Predictor:
    return Predictor.load(path, model_name=name, version=version)


@pytest.fixture(scope="module")
def demo_v1_v2(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return write_demo_model(root / "v1", 1), write_demo_model(root / "v2", 2)


def versions_dir(root: Path, demo_v1_v2, versions=(1, 2, 3)) -> Path:
    for version in versions:
        shutil.copytree(demo_v1_v2[(version + 1) % 2], root / str(version))
    return root


@pytest.mark.parametrize(
    "policy,served",
    [("latest", ["3"]), ("latest:2", ["2", "3"]), ("all", ["1", "2", "3"]), ("specific:1,3", ["1", "3"])],
)
def test_version_policies(tmp_path, demo_v1_v2, policy, served):
    repository = ModelRepository(load_predictor, policy=VersionPolicy.parse(policy))
    repository.add("iris", versions_dir(tmp_path / "iris", demo_v1_v2))
    repository.load_now("iris")
    model = repository.get_model("iris")
    assert model.versions == served and model.version == served[-1]
    assert [p.version for p in model.predictors.values()] == served
    with pytest.raises(ModelNotFound, match=f"has version {', '.join(served)}, not 9"):
        model.predictor_for("9")


def test_policy_strings():
    assert VersionPolicy.parse("latest:3").select(["1", "10", "2", "9"]) == ["2", "9", "10"]  # by number
    for bad in ("newest", "latest:0", "specific:", "all:2", "specific:a"):
        with pytest.raises(SettingsError):
            VersionPolicy.parse(bad)


def test_a_repository_serves_every_model_directory(tmp_path, demo_v1_v2):
    root = tmp_path / "repo"
    shutil.copytree(demo_v1_v2[0], root / "flowers")
    versions_dir(root / "iris", demo_v1_v2, (1, 2))
    (root / ".staging").mkdir()  # hidden: where writers put directories before the rename
    repository = ModelRepository(load_predictor, root=root)
    assert repository.discover() == ["flowers", "iris"]
    assert repository.all_ready()  # a repository may be empty and ready (KServe multi-model)
    for name in repository.discover():
        repository.load_now(name)
    assert repository.get_model("iris").versions == ["2"] and repository.get_model("flowers").versions == ["1"]
    assert repository.index() == [
        {"name": "flowers", "version": "1", "state": "READY"},
        {"name": "iris", "version": "2", "state": "READY"},
    ]


def test_incomplete_versions_are_never_loaded(tmp_path, demo_v1_v2):
    root = versions_dir(tmp_path / "iris", demo_v1_v2, (1,))
    repository = ModelRepository(load_predictor)
    repository.add("iris", root)
    repository.load_now("iris")
    # Version 2 half-copied, its _COMPLETE listing a file that is not there yet.
    (root / "2").mkdir()
    shutil.copy(demo_v1_v2[1] / "metadata.json", root / "2")
    (root / "2" / COMPLETE_FILE).write_text(f"{'0' * 64}  model.joblib\n")
    assert repository.changed() == []
    assert repository.get_model("iris").versions == ["1"]
    assert any("not there yet" in e.get("reason", "") for e in repository.index())
    # Copied in full and marked: it counts.
    shutil.copy(demo_v1_v2[1] / "model.joblib", root / "2")
    write_complete_file(root / "2")
    assert repository.changed() == ["iris"]
    repository.load_now("iris")
    assert repository.get_model("iris").versions == ["2"]


def test_a_directory_without_marker_counts_once_it_looked_the_same_twice(tmp_path, demo_v1_v2):
    root = versions_dir(tmp_path / "iris", demo_v1_v2, (1,))
    repository = ModelRepository(load_predictor)
    repository.add("iris", root)
    repository.load_now("iris")
    shutil.copytree(demo_v1_v2[1], root / "2")
    assert repository.changed() == []  # first look: maybe still being written
    assert repository.changed() == ["iris"]  # the same files on the second look


def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(tmp_path, demo_v1_v2):
    root = versions_dir(tmp_path / "iris", demo_v1_v2, (1,))
    repository = ModelRepository(load_predictor)
    repository.add("iris", root)
    repository.load_now("iris")
    served = repository.get_model("iris").predictor
    (root / "2").mkdir()
    (root / "2" / "model.joblib").write_bytes(b"not a pickle")
    write_complete_file(root / "2")
    assert repository.load_now("iris") == []
    assert repository.get_model("iris").predictor is served
    refused = [e for e in repository.index() if e.get("version") == "2"]
    assert refused[0]["state"] == "UNAVAILABLE" and "cannot load" in refused[0]["reason"]
    assert repository.changed() == []  # not retried until its files change


def test_a_version_that_fails_its_warmup_is_refused(tmp_path, demo_v1_v2):
    root = versions_dir(tmp_path / "iris", demo_v1_v2, (1, 2))
    (root / "2" / "warmup.jsonl").write_text(
        '{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]}\n'
    )
    repository = ModelRepository(load_predictor)
    repository.add("iris", root)
    with pytest.raises(ArtifactError, match=r"warmup.jsonl: request 1 failed: InvalidInput"):
        repository.load_now("iris")  # latest is 2, and nothing else is chosen


def test_unload_lets_the_model_go(tmp_path, demo_v1_v2):
    repository = ModelRepository(load_predictor)
    repository.add("iris", demo_v1_v2[0])

    async def scenario():
        await repository.load("iris")
        estimator = weakref.ref(repository.get_model("iris").predictor.estimator)
        await repository.unload("iris")
        assert repository.get_model("iris") is None and not repository.all_ready()
        for _ in range(100):
            if estimator() is None:
                break
            await asyncio.sleep(0.05)
        return estimator

    estimator = asyncio.run(scenario())
    gc.collect()
    assert estimator() is None, "the unloaded model is still referenced"
    assert repository.index()[0]["state"] == "UNAVAILABLE"
    with pytest.raises(ModelNotFound):
        asyncio.run(repository.unload("iris"))


def test_a_retired_version_finishes_what_it_was_given(tmp_path, demo_v1_v2):
    root = versions_dir(tmp_path / "iris", demo_v1_v2, (1,))
    repository = ModelRepository(load_predictor)
    repository.add("iris", root)
    repository.load_now("iris")
    old = repository.get_model("iris").predictor
    from model_server.core.codec import PREDICT, V1Request

    async def scenario():
        old.in_flight += 1  # a request on it, as the seam leaves one between read and predict
        shutil.copytree(demo_v1_v2[1], root / "2")
        write_complete_file(root / "2")
        await repository.load("iris")
        assert repository.get_model("iris").version == "2"
        await asyncio.sleep(0.2)
        assert old.batcher is not None, "closed while a request was still on it"
        outputs = await old.infer(V1Request([[5.1, 3.5, 1.4, 0.2]], [PREDICT]))
        old.in_flight -= 1
        for _ in range(100):
            if old.batcher is None:
                return outputs
            await asyncio.sleep(0.05)
        raise AssertionError("never closed")

    assert asyncio.run(scenario())[0].data.tolist() == [0]


def test_loads_beside_traffic_share_the_gil_more_often_and_restore_it_after(tmp_path, demo_v1_v2):
    """Two loads at once (two models): the shorter GIL switch interval holds while either runs,
    and CPython's own comes back only when both are done."""
    seen = {}
    gate = threading.Event()

    def recording_load(path: Path, name: str, version: str | None) -> Predictor:
        seen[name] = sys.getswitchinterval()
        if name == "slow":
            gate.wait(10)
        return load_predictor(path, name, version)

    repository = ModelRepository(recording_load)
    repository.add("slow", shutil.copytree(demo_v1_v2[0], tmp_path / "slow"))
    repository.add("fast", shutil.copytree(demo_v1_v2[0], tmp_path / "fast"))
    before = sys.getswitchinterval()

    async def both():
        slow = asyncio.create_task(repository.load("slow"))
        await repository.load("fast")
        during = sys.getswitchinterval()  # "fast" is done, "slow" still loads
        gate.set()
        await slow
        return during

    during = asyncio.run(both())
    assert seen == {"slow": LOADING_SWITCH_SECONDS, "fast": LOADING_SWITCH_SECONDS}
    assert during == LOADING_SWITCH_SECONDS
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("layout", ["versions", "model directory"])
def test_the_index_says_loading_while_a_load_runs(tmp_path, demo_v1_v2, layout):
    source = versions_dir(tmp_path / "m", demo_v1_v2, (1,)) if layout == "versions" else demo_v1_v2[0]
    started, release = threading.Event(), threading.Event()

    def slow_loader(path, name, version):
        started.set()
        release.wait(10)
        return load_predictor(path, name, version)

    repository = ModelRepository(slow_loader)
    repository.add("m", source)
    assert repository.index() == [{"name": "m", "state": "UNAVAILABLE", "reason": "not loaded"}]
    loader = threading.Thread(target=repository.load_now, args=("m",))
    loader.start()
    assert started.wait(10)
    expected = (
        {"name": "m", "version": "1", "state": "LOADING"} if layout == "versions" else {"name": "m", "state": "LOADING"}
    )
    assert repository.index() == [expected]
    release.set()
    loader.join()
    assert repository.index() == [{"name": "m", "version": "1", "state": "READY"}]
