"""Object stores and engines: s3:// in and out against a real S3-compatible server (moto's, on a
free port), and the Python API in Dask's local mode."""

from __future__ import annotations

import json

import pytest

from tests.support.s3 import moto_s3

from .support import iris_frame, run_batch, write

BUCKET = "scores"


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free port; the AWS_* variables the batch command reads to reach it."""
    with moto_s3(BUCKET) as found:
        yield found


def test_s3_input_and_output_through_a_real_s3_server(demo_model_dir, s3, tmp_path):
    client, env = s3
    frames = [iris_frame(1200, seed) for seed in range(2)]
    frames[1]["id"] = [f"b{i}" for i in range(1200)]
    frames[1].loc[3, "petal_width"] = float("nan")
    for name, frame in zip(["in/a.parquet", "in/b.csv"], frames, strict=True):
        path = write(frame, tmp_path / name)
        client.upload_file(str(path), BUCKET, name)
    args = [
        f"--model_dir={demo_model_dir}",
        f"--input=s3://{BUCKET}/in/",
        f"--output=s3://{BUCKET}/out",
        "--chunk_rows=500",
        "--keep_columns=id",
    ]
    done = run_batch(*args, env=env)
    assert done.returncode == 2, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows_in"], summary["rows_rejected"]) == (2400, 1)
    assert summary["errors"] == f"s3://{BUCKET}/out/_errors.jsonl"
    local = run_batch(
        f"--model_dir={demo_model_dir}",
        f"--input={tmp_path / 'in'}",
        f"--output={tmp_path / 'out'}",
        "--chunk_rows=500",
        "--keep_columns=id",
    )
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"])
    parts = [k for k in keys if k.startswith("out/part-")]
    assert [k.removeprefix("out/") for k in parts] == sorted(p.name for p in (tmp_path / "out").glob("part-*"))
    for key in parts:  # the same bytes as the same run on local files
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert body == (tmp_path / "out" / key.removeprefix("out/")).read_bytes()
    errors = client.get_object(Bucket=BUCKET, Key="out/_errors.jsonl")["Body"].read().decode()
    assert [json.loads(line)["row"] for line in errors.splitlines()] == [1203]
    assert local.returncode == 2
    # A rerun resumes from the manifest in the bucket.
    again = run_batch(*args, env=env)
    assert again.returncode == 2 and json.loads(again.stdout)["rows_scored_now"] == 0


def test_a_missing_bucket_stops_the_run(demo_model_dir, s3):
    _, env = s3
    done = run_batch(
        f"--model_dir={demo_model_dir}", "--input=s3://no-such-bucket/x.parquet", "--output=/tmp/x", env=env
    )
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith("batch: stopped: input s3://")


def test_dask_map_partitions_in_local_mode(demo_model_dir, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    import dask

    from model_server.batch import Scorer

    frame = iris_frame(5000)
    write(frame, tmp_path / "in.parquet")
    scorer = Scorer(demo_model_dir, outputs=("predict", "label"), keep_columns=("id",))
    ddf = dd.read_parquet(str(tmp_path / "in.parquet")).repartition(npartitions=4)
    for scheduler in ("threads", "processes"):  # processes: the Scorer is pickled to each worker
        with dask.config.set(scheduler=scheduler):
            scored = ddf.map_partitions(scorer).compute()
        assert list(scored["id"]) == list(frame["id"])
        assert list(scored["label"]) == list(scorer(frame)["label"])
    assert list(scored.columns) == ["id", "predict", "label"]
