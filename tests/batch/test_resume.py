"""A run killed with SIGKILL at any point and started again with the same arguments ends with
exactly the rows of an uninterrupted run: same parts, byte for byte, no gaps, no duplicates."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.tools import REPO

from .support import BATCH, iris_frame, part_bytes, read_errors, read_output, run_batch, write

ROWS, CHUNK = 60_000, 1000


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    frame = iris_frame(ROWS)
    frame.loc[[10, 31_337, 59_999], "petal_length"] = float("nan")
    directory = tmp_path_factory.mktemp("resume")
    write(frame.iloc[:25_000], directory / "in" / "a.parquet")
    write(frame.iloc[25_000:], directory / "in" / "b.csv")
    return directory / "in"


def args(model_dir, source, out) -> list[str]:
    # JSON Lines output and one worker: chunks slow enough to be killed between them.
    return [
        f"--model_dir={model_dir}",
        f"--input={source}",
        f"--output={out}",
        f"--chunk_rows={CHUNK}",
        "--keep_columns=id",
        "--format=jsonl",
        "--workers=1",
        "--outputs=predict,predict_proba",
    ]


def committed(out: Path) -> int:
    try:
        manifest = json.loads((out / "_manifest.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    return sum(len(entry["chunks"]) for entry in manifest["files"].values())


def kill_when(argv: list[str], ready, timeout: float = 60) -> None:
    """Start the command and SIGKILL it as soon as ``ready()`` holds."""
    process = subprocess.Popen(
        [*BATCH, *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MODEL_SERVER_PROGRESS": "none"},
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert process.poll() is None, "the run ended before the kill point"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


def test_killed_runs_resume_to_exactly_the_uninterrupted_output(demo_model_dir, source, tmp_path):
    whole = tmp_path / "whole"
    assert run_batch(*args(demo_model_dir, source, whole)).returncode == 2  # three NaN rows

    out = tmp_path / "killed"
    n_chunks = ROWS // CHUNK
    # 1: a part on disk that the manifest does not name yet (or very nearly so).
    kill_when(args(demo_model_dir, source, out), lambda: any(out.glob("part-*")))
    # 2: about a third in; 3: on the rerun, in the second file.
    kill_when(args(demo_model_dir, source, out), lambda: committed(out) >= n_chunks // 3)
    kill_when(args(demo_model_dir, source, out), lambda: committed(out) >= 2 * n_chunks // 3)
    assert 0 < committed(out) < n_chunks
    done = run_batch(*args(demo_model_dir, source, out))
    assert done.returncode == 2, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (ROWS, ROWS - 3, 3)
    assert summary["rows_scored_now"] < ROWS  # it resumed: committed chunks were not scored again

    assert part_bytes(out) == part_bytes(whole)
    assert not list(out.rglob(".tmp-*"))
    rows = read_output(out, "jsonl")
    assert list(rows["id"]) == [f"r{i}" for i in range(ROWS) if i not in (10, 31_337, 59_999)]
    assert read_errors(out / "_errors.jsonl") == read_errors(whole / "_errors.jsonl")
    assert [e["row"] for e in read_errors(out / "_errors.jsonl")] == [10, 31_337, 59_999]


def test_a_finished_run_is_not_redone_and_another_run_is_refused(demo_model_dir, source, tmp_path):
    out = tmp_path / "out"
    assert run_batch(*args(demo_model_dir, source, out)).returncode == 2
    again = run_batch(*args(demo_model_dir, source, out))
    assert again.returncode == 2 and json.loads(again.stdout)["rows_scored_now"] == 0
    other = run_batch(*args(demo_model_dir, source, out), "--outputs=label")
    assert other.returncode == 1
    assert "holds another run (its outputs differ): use another --output, or --overwrite" in other.stderr
    replaced = run_batch(*args(demo_model_dir, source, out), "--outputs=label", "--overwrite")
    assert replaced.returncode == 2, replaced.stderr
    assert list(read_output(out, "jsonl").columns) == ["id", "label"]
