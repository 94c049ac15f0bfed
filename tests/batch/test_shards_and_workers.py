"""Sharding by JOB_COMPLETION_INDEX: N processes' outputs together are one unsharded run's, with
no overlap. Workers: the output is the same bytes with 1 and N workers, and between runs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from tests.support.tools import REPO

from .support import BATCH, iris_frame, part_bytes, read_errors, run_batch, write

SHARDS = 3


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("shards") / "in"
    for i, suffix in enumerate([".parquet", ".csv", ".jsonl", ".parquet", ".csv"]):
        frame = iris_frame(1500 + 100 * i, seed=i)
        frame["id"] = [f"f{i}-{j}" for j in range(len(frame))]
        frame.loc[7 * (i + 1), "sepal_length"] = float("nan")
        write(frame, directory / f"{i}{suffix}")
    return directory


def common(model_dir, source, out) -> list[str]:
    return [
        f"--model_dir={model_dir}",
        f"--input={source}",
        f"--output={out}",
        "--chunk_rows=500",
        "--keep_columns=id",
        "--outputs=predict,label,predict_proba",
    ]


def test_shards_by_completion_index_add_up_to_one_unsharded_run(demo_model_dir, source, tmp_path):
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    assert run_batch(*common(demo_model_dir, source, whole)).returncode == 2
    # As the Indexed Job runs them: at the same time, into one output, told apart by the index.
    processes = [
        subprocess.Popen(
            [*BATCH, *common(demo_model_dir, source, sharded)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={
                **os.environ,
                "JOB_COMPLETION_INDEX": str(k),
                "MODEL_SERVER_SHARD_COUNT": str(SHARDS),
                "MODEL_SERVER_PROGRESS": "none",
            },
        )
        for k in range(SHARDS)
    ]
    summaries = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 2, stderr.decode()
        summaries.append(json.loads(stdout))
    assert part_bytes(sharded) == part_bytes(whole)
    parts_by_shard = []
    for k in range(SHARDS):
        manifest = json.loads((sharded / f"_manifest-{k}-of-{SHARDS}.json").read_text())
        parts_by_shard.append({c["part"] for f in manifest["files"].values() for c in f["chunks"].values()})
    assert sum(len(p) for p in parts_by_shard) == len(set().union(*parts_by_shard)) == len(part_bytes(whole))
    whole_rows = json.loads(run_batch(*common(demo_model_dir, source, whole)).stdout)["rows_in"]
    assert sum(s["rows_in"] for s in summaries) == whole_rows == 8500
    errors = sorted(
        (e for k in range(SHARDS) for e in read_errors(sharded / f"_errors-{k}-of-{SHARDS}.jsonl")),
        key=lambda e: e["row"],
    )
    assert errors == read_errors(whole / "_errors.jsonl")
    assert [e["row"] for e in errors] == [7, 1514, 3121, 4828, 6635]  # rows numbered in the whole input


@pytest.fixture(scope="module")
def forest_dir(tmp_path_factory) -> Path:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    model_dir = tmp_path_factory.mktemp("forest")
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, (X[:, 0] + X[:, 1] > 0).astype(int))
    joblib.dump(forest, model_dir / "model.joblib")
    return model_dir


@pytest.mark.parametrize("model", ["iris", "forest"])
def test_one_worker_and_many_write_the_same_bytes(demo_model_dir, forest_dir, tmp_path, model):
    if model == "iris":
        model_dir, source = demo_model_dir, write(iris_frame(20_000), tmp_path / "in.parquet")
        extra = ["--keep_columns=id"]
    else:
        frame = pd.DataFrame(np.random.default_rng(1).normal(size=(20_000, 6)), columns=list("abcdef"))
        model_dir, source, extra = forest_dir, write(frame, tmp_path / "in.parquet"), ["--positional"]
    outputs = []
    for name, workers in (("one", 1), ("four", 4), ("four-again", 4)):
        out = tmp_path / name
        done = run_batch(
            f"--model_dir={model_dir}",
            f"--input={source}",
            f"--output={out}",
            "--chunk_rows=1500",
            f"--workers={workers}",
            "--outputs=predict,predict_proba",
            *extra,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(part_bytes(out))
    assert len(outputs[0]) == 14 and outputs[0] == outputs[1] == outputs[2]
