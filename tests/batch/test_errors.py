"""Bad rows go to the errors file with the reasons the server gives; what stops a run stops it at
once with one line; the exit codes; --help and the MODEL_SERVER_* variables."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from model_server.batch import BatchSettings, Scorer, run
from model_server.core.artifact import write_metadata
from model_server.demo import FEATURES

from .support import iris_frame, read_errors, read_output, run_batch, write


def server_reason(served_model, row: int, instance: dict) -> str:
    """The real server's message for ``instance`` as the last of ``row + 1`` instances."""
    good = dict(zip(FEATURES, [5.1, 3.5, 1.4, 0.2], strict=True))
    body = {"instances": [good] * row + [instance]}
    response = httpx.post(f"{served_model.http_url}/v1/models/iris:predict", json=body, timeout=10)
    assert response.status_code == 400
    return response.json()["error"]


def test_bad_rows_are_refused_with_the_servers_reasons_and_the_rest_scored(served_model, demo_model_dir, tmp_path):
    frame = iris_frame(40)
    lines = [json.dumps(r) for r in frame.to_dict("records")]
    bad = {
        3: ("sepal_length", "abc"),
        7: ("petal_width", None),
        11: ("sepal_width", [1, 2]),
        12: ("petal_length", True),  # a boolean counts as 1, as in the server
    }
    for row, (column, value) in bad.items():
        record = json.loads(lines[row])
        record[column] = value
        lines[row] = json.dumps(record)
    lines[20] = "{not json"
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    summary = run(
        BatchSettings(
            model_dir=str(demo_model_dir), input=str(source), output=str(tmp_path / "out"), keep_columns=("id",)
        )
    )
    errors = read_errors(tmp_path / "out" / "_errors.jsonl")
    assert [e["row"] for e in errors] == [3, 7, 11, 20]
    assert {e["file"] for e in errors} == {str(source)}
    for error in errors[:3]:
        column, value = bad[error["row"]]
        record = json.loads(lines[error["row"]])
        assert error["column"] == column
        assert error["reason"] == server_reason(served_model, error["row"], {k: record[k] for k in FEATURES})
    assert errors[3]["column"] is None and "not valid JSON" in errors[3]["reason"]
    assert (summary.rows_in, summary.rows_out, summary.rows_rejected) == (40, 36, 4)
    out = read_output(tmp_path / "out")
    assert list(out["id"]) == [f"r{i}" for i in range(40) if i not in (3, 7, 11, 20)]


def test_non_finite_numbers_are_refused_row_by_row_in_the_vectorized_path(demo_model_dir, tmp_path):
    frame = iris_frame(3000)
    frame.loc[[5, 2999], "sepal_width"] = np.nan
    frame.loc[1500, "petal_length"] = np.inf
    source = write(frame, tmp_path / "in.parquet")
    run(BatchSettings(model_dir=str(demo_model_dir), input=str(source), output=str(tmp_path / "out"), chunk_rows=1000))
    errors = read_errors(tmp_path / "out" / "_errors.jsonl")
    assert [(e["row"], e["column"]) for e in errors] == [
        (5, "sepal_width"),
        (1500, "petal_length"),
        (2999, "sepal_width"),
    ]
    assert errors[1]["reason"] == (
        "instance 1500, feature 'petal_length': null/NaN or infinity is not accepted by this model"
    )
    assert len(read_output(tmp_path / "out")) == 2997


def test_rows_the_model_itself_refuses_are_found_and_the_rest_predicted(tmp_path):
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = pd.DataFrame({"color": ["red", "green", "blue", "red"], "y": [0, 1, 1, 0]})
    model = make_pipeline(OneHotEncoder(handle_unknown="error"), LogisticRegression()).fit(train[["color"]], train.y)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    joblib.dump(model, model_dir / "model.joblib")
    write_metadata(model_dir, features=[{"name": "color", "datatype": "BYTES"}])
    colors = ["red", "green", "purple", "blue", "red", "teal", "green", "red"]
    scored = Scorer(model_dir).score(pd.DataFrame({"color": colors}), first_row=100, file="f.csv")
    assert [(r.row, r.file) for r in scored.rejected] == [(102, "f.csv"), (105, "f.csv")]
    assert all(r.reason.startswith("the model rejected the input:") for r in scored.rejected)
    assert scored.table.column("predict").to_pylist() == list(
        model.predict(pd.DataFrame({"color": [c for c in colors if c not in ("purple", "teal")]}))
    )


def test_exit_codes_summary_and_on_error_fail(demo_model_dir, tmp_path):
    clean = write(iris_frame(300), tmp_path / "clean.csv")
    done = run_batch(f"--model_dir={demo_model_dir}", f"--input={clean}", f"--output={tmp_path / 'clean'}")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows_in"], summary["rows_out"], summary["rows_rejected"]) == (300, 300, 0)
    assert "done: rows in 300, out 300, rejected 0" in done.stderr

    frame = iris_frame(300)
    frame["sepal_length"] = frame["sepal_length"].astype(object)
    frame.loc[42, "sepal_length"] = "abc"
    dirty = write(frame, tmp_path / "dirty.csv")
    skipped = run_batch(
        f"--model_dir={demo_model_dir}",
        f"--input={dirty}",
        f"--output={tmp_path / 'skip'}",
        f"--errors={tmp_path / 'errors.jsonl'}",
    )
    assert skipped.returncode == 2, skipped.stderr
    assert [e["row"] for e in read_errors(tmp_path / "errors.jsonl")] == [42]
    failed = run_batch(
        f"--model_dir={demo_model_dir}", f"--input={dirty}", f"--output={tmp_path / 'fail'}", "--on_error=fail"
    )
    assert failed.returncode == 2
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"batch: stopped: row 42 of the input ({dirty}), column 'sepal_length': instance 42, ")
    assert "expected a number, got a string 'abc'" in last and last.endswith("(--on_error fail)")


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing-column", "has no column ['petal_width']; the model takes"),
        ("not-parquet", "cannot read it as parquet"),
        ("no-model", "no model file in"),
        ("no-input", "no such file or directory"),
        ("empty-dir", "no Parquet, CSV or JSON Lines files there"),
        ("missing-keep-column", "has no column ['customer'] (--keep_columns)"),
    ],
)
def test_what_stops_a_run_stops_it_with_one_line(demo_model_dir, tmp_path, case, expected):
    model_dir, source, extra = demo_model_dir, tmp_path / "in.parquet", []
    write(iris_frame(10), source)
    if case == "missing-column":
        write(iris_frame(10).drop(columns="petal_width"), source)
    elif case == "not-parquet":
        source.write_bytes(b"this is not parquet at all")
    elif case == "no-model":
        model_dir = tmp_path / "nothing"
        model_dir.mkdir()
    elif case == "no-input":
        source = tmp_path / "absent.parquet"
    elif case == "empty-dir":
        source = tmp_path / "empty"
        source.mkdir()
    else:
        extra = ["--keep_columns=customer"]
    done = run_batch(f"--model_dir={model_dir}", f"--input={source}", f"--output={tmp_path / 'out'}", *extra)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("batch: stopped: ") and expected in last, done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_every_flag_and_variables_work(demo_model_dir, tmp_path):
    done = run_batch("--help")
    assert done.returncode == 0
    for flag in (
        "--input",
        "--output",
        "--errors",
        "--outputs",
        "--keep_columns",
        "--on_error",
        "--workers",
        "--format",
        "--positional",
        "--shard_index",
        "--shard_count",
        "MODEL_SERVER_INPUT",
    ):
        assert flag in done.stdout
    source = write(iris_frame(20), tmp_path / "in.parquet")
    env = {
        "MODEL_SERVER_MODEL_DIR": str(demo_model_dir),
        "MODEL_SERVER_INPUT": str(source),
        "MODEL_SERVER_OUTPUT": str(tmp_path / "out"),
        "MODEL_SERVER_FORMAT": "csv",
        "MODEL_SERVER_OUTPUTS": "label",
    }
    done = run_batch(env=env)
    assert done.returncode == 0, done.stderr
    assert list(read_output(tmp_path / "out", "csv").columns) == ["label"]
    missing = run_batch(f"--model_dir={demo_model_dir}", f"--input={source}")
    assert missing.returncode == 2 and "--output is required" in missing.stderr
    unknown = run_batch(f"--input={source}", "--output=x", "--outputs=predict,probs")
    assert unknown.returncode == 2 and "--outputs: unknown ['probs']" in unknown.stderr


def test_progress_shows_rows_per_second_and_eta(demo_model_dir, tmp_path):
    from model_server.batch.progress import Progress

    progress = Progress("none", total=1000)
    progress.advance(250, 3)
    line = progress.line()
    assert line.startswith("250 of 1,000 (25%) rows, ") and "rows/s, 3 rejected, ETA " in line
    source = write(iris_frame(200), tmp_path / "in.parquet")
    done = run_batch(
        f"--model_dir={demo_model_dir}", f"--input={source}", f"--output={tmp_path / 'out'}", "--progress=bar"
    )
    assert done.returncode == 0 and "200/200" in done.stderr and "rows/s" in done.stderr
