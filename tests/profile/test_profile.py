"""python -m model_server.profile as a real process on files of training rows: profile.json beside
the model (quantile bins that hold the training rows evenly, missing rates, class frequencies of
the predictions), pinned in metadata.json, and the model still served; the binning itself in-process."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from model_server.demo import FEATURES
from model_server.profile.building import categorical_profile, numeric_profile
from tests.batch.support import iris_frame, write
from tests.support.servers import start_server
from tests.support.tools import REPO


def profile(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model_server.profile", *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_profile_json_beside_the_model_pinned_in_metadata(demo_model_dir, tmp_path, suffix):
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "model")
    frame = iris_frame(2000)
    frame.loc[frame.index[:100], FEATURES[0]] = np.nan  # 5% missing
    if suffix == ".jsonl":  # JSON has no NaN: missing is null
        frame = frame.astype(object).where(frame.notna(), None)
    data = write(frame, tmp_path / f"train{suffix}")
    done = profile("--model_dir", str(model_dir), "--data", str(data), "--bins", "10")
    assert done.returncode == 0, done.stderr
    body = (model_dir / "profile.json").read_bytes()
    document = json.loads(body)
    metadata = json.loads((model_dir / "metadata.json").read_text())
    assert metadata["profile_sha256"] == hashlib.sha256(body).hexdigest()
    assert document["rows"] == 2000 and sorted(document["features"]) == sorted(FEATURES)
    first = document["features"][FEATURES[0]]
    assert first["kind"] == "numeric" and first["missing_rate"] == pytest.approx(0.05)
    for feature in document["features"].values():
        assert len(feature["edges"]) == 9 and sum(feature["frequencies"]) == pytest.approx(1)
        assert max(feature["frequencies"]) < 0.12 and min(feature["frequencies"]) > 0.08  # quantile bins: even
    (output,) = document["outputs"].values()
    assert output["kind"] == "categorical" and sum(output["categories"].values()) == pytest.approx(1)
    assert output["other"] == pytest.approx(0)
    # The pinned metadata still loads: the server serves the model.
    with start_server(model_dir, "iris") as served:
        assert served.process.poll() is None


def test_a_missing_column_is_named_and_nothing_is_written(demo_model_dir, tmp_path):
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "model")
    data = write(iris_frame(50).drop(columns=[FEATURES[1]]), tmp_path / "train.csv")
    done = profile("--model_dir", str(model_dir), "--data", str(data))
    assert done.returncode != 0 and FEATURES[1] in done.stderr and "Traceback" not in done.stderr
    assert not (model_dir / "profile.json").exists()


def test_numeric_bins_are_quantiles_and_categories_keep_the_top_and_other():
    values = np.concatenate([np.arange(1000, dtype=float), [np.nan] * 1000])
    numeric = numeric_profile(values, 4)
    assert numeric["edges"] == pytest.approx([249.75, 499.5, 749.25])
    assert numeric["frequencies"] == pytest.approx([0.25] * 4) and numeric["missing_rate"] == 0.5
    strings = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 5 + [None] * 25, dtype=object)
    categorical = categorical_profile(strings, 2)
    assert categorical["categories"] == {"a": 0.5, "b": 0.3}
    assert categorical["other"] == pytest.approx(0.2) and categorical["missing_rate"] == 0.2
    constant = numeric_profile(np.ones(10), 10)  # coinciding quantiles: one edge, not ten
    assert constant["edges"] == [1.0] and sum(constant["frequencies"]) == 1


def test_batch_drift_report_for_a_whole_file(demo_model_dir, tmp_path):
    model_dir = shutil.copytree(demo_model_dir, tmp_path / "model")
    train = write(iris_frame(5000, seed=0), tmp_path / "train.parquet")
    assert profile("--model_dir", str(model_dir), "--data", str(train)).returncode == 0
    shifted = iris_frame(3000, seed=3)
    shifted[FEATURES[2]] += 1.7  # one standard deviation
    data = write(shifted, tmp_path / "score.parquet")
    report_path = tmp_path / "drift.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_server.batch",
            f"--model_dir={model_dir}",
            f"--input={data}",
            f"--output={tmp_path / 'scores'}",
            f"--drift_report={report_path}",
            "--progress=none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(report_path.read_text())
    assert report["rows"] == 3000 and report["method"] == "psi"
    assert report["features"][FEATURES[2]]["psi"] >= 0.25
    assert all(report["features"][f]["psi"] < 0.1 for f in FEATURES if f != FEATURES[2])
    assert report["features"][FEATURES[2]]["out_of_range"] > 0 and "predict" in report["outputs"]
    unprofiled = subprocess.run(
        [
            sys.executable,
            "-m",
            "model_server.batch",
            f"--model_dir={demo_model_dir}",
            f"--input={data}",
            f"--output={tmp_path / 'again'}",
            f"--drift_report={tmp_path / 'none.json'}",
            "--progress=none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert unprofiled.returncode != 0 and "profile.json" in unprofiled.stderr and "Traceback" not in unprofiled.stderr


def test_the_release_publishes_the_profile_beside_the_model_in_s3(demo_model_dir, tmp_path):
    """scripts/publish_profile.py (the model release workflow's step) against a real S3 server:
    profile.json and its pinning metadata.json land beside the stored model, which is untouched."""
    from tests.support.s3 import moto_s3

    model_dir = shutil.copytree(demo_model_dir, tmp_path / "model")
    data = write(iris_frame(500), tmp_path / "train.parquet")
    assert profile("--model_dir", str(model_dir), "--data", str(data)).returncode == 0
    with moto_s3("models") as (client, env):
        for path in demo_model_dir.iterdir():  # the version as training stored it, without a profile
            client.put_object(Bucket="models", Key=f"iris/v2/{path.name}", Body=path.read_bytes())
        publish = [sys.executable, "scripts/publish_profile.py", "--model-dir", str(model_dir)]
        to_s3 = [*publish, "--model-uri", "s3://models/iris/v2"]
        done = subprocess.run(to_s3, capture_output=True, text=True, cwd=REPO, env={**os.environ, **env})
        assert done.returncode == 0, done.stderr
        stored = {o["Key"]: client.get_object(Bucket="models", Key=o["Key"])["Body"].read() for o in
                  client.list_objects_v2(Bucket="models", Prefix="iris/v2/")["Contents"]}  # fmt: skip
    assert stored["iris/v2/profile.json"] == (model_dir / "profile.json").read_bytes()
    metadata = json.loads(stored["iris/v2/metadata.json"])
    assert metadata["profile_sha256"] == hashlib.sha256(stored["iris/v2/profile.json"]).hexdigest()
    assert stored["iris/v2/model.joblib"] == (demo_model_dir / "model.joblib").read_bytes()
    (model_dir / "profile.json").write_text("{}")  # no longer the pinned one
    done = subprocess.run([*publish, "--model-uri", str(tmp_path / "out")], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 1 and "does not pin this profile.json" in done.stderr
    assert not (tmp_path / "out").exists()
