"""Every input format (a file, a directory, a glob), every output format, the requested columns, row
order: the predictions are the predictor's own, for every row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from model_server.batch import BatchSettings, Scorer, run
from model_server.core.predictor import Predictor
from model_server.demo import FEATURES

from .support import iris_frame, read_errors, read_output, write

ROWS = 2500


@pytest.fixture(scope="module")
def predictor(demo_model_dir) -> Predictor:
    return Predictor.load(demo_model_dir)


def expected(predictor: Predictor, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    X = frame[FEATURES].to_numpy(dtype=np.float64)
    return predictor.predict_batch(X, frozenset({"predict", "label", "predict_proba"}))


def settings(model_dir, input, output, **extra) -> BatchSettings:
    values = {"chunk_rows": 700, "progress": "none", "keep_columns": ("id",)} | extra
    return BatchSettings(model_dir=str(model_dir), input=str(input), output=str(output), **values)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_each_input_format_scores_every_row_in_order(demo_model_dir, predictor, tmp_path, suffix):
    frame = iris_frame(ROWS)
    source = write(frame, tmp_path / f"in{suffix}")
    summary = run(settings(demo_model_dir, source, tmp_path / "out", outputs=("predict", "label", "predict_proba")))
    assert (summary.rows_in, summary.rows_out, summary.rows_rejected) == (ROWS, ROWS, 0)
    out = read_output(tmp_path / "out")
    want = expected(predictor, frame)
    assert list(out["id"]) == list(frame["id"])
    assert list(out.columns) == ["id", "predict", "label", *[f"predict_proba_{c}" for c in predictor.class_labels]]
    assert (out["predict"].to_numpy() == want["predict"]).all()
    assert list(out["label"]) == list(want["label"])
    # CSV holds decimal text: the parsed floats are the same ones pandas wrote.
    proba = out[[f"predict_proba_{c}" for c in predictor.class_labels]].to_numpy()
    np.testing.assert_allclose(proba, want["predict_proba"], rtol=0, atol=1e-12)
    assert read_errors(tmp_path / "out" / "_errors.jsonl") == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_output_formats_hold_the_same_rows(demo_model_dir, predictor, tmp_path, fmt):
    frame = iris_frame(ROWS)
    source = write(frame, tmp_path / "in.parquet")
    run(settings(demo_model_dir, source, tmp_path / "out", format=fmt, outputs=("predict", "label")))
    out = read_output(tmp_path / "out", fmt)
    assert list(out["id"]) == list(frame["id"])
    assert (out["predict"].to_numpy() == expected(predictor, frame)["predict"]).all()


def test_a_directory_and_a_glob_are_read_in_path_order(demo_model_dir, predictor, tmp_path):
    frames = [iris_frame(900, seed) for seed in range(3)]
    for i, (frame, suffix) in enumerate(zip(frames, [".parquet", ".csv", ".jsonl"], strict=True)):
        frame["id"] = [f"f{i}-{j}" for j in range(len(frame))]
        write(frame, tmp_path / "in" / f"{i}{suffix}")
    (tmp_path / "in" / "_SUCCESS").write_text("")  # as Spark leaves it: skipped
    whole = pd.concat(frames, ignore_index=True)
    run(settings(demo_model_dir, tmp_path / "in", tmp_path / "dir"))
    run(settings(demo_model_dir, f"{tmp_path}/in/*.*", tmp_path / "glob"))
    for out in (read_output(tmp_path / "dir"), read_output(tmp_path / "glob")):
        assert list(out["id"]) == list(whole["id"])
        assert (out["predict"].to_numpy() == expected(predictor, whole)["predict"]).all()


def test_positional_columns_for_a_model_without_names(tmp_path):
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    X, y = load_iris(return_X_y=True)
    model_dir = tmp_path / "tree"
    model_dir.mkdir()
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(X, y), model_dir / "model.joblib")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    frame.insert(2, "id", range(len(X)))  # kept, and not a feature, wherever it is
    source = write(frame, tmp_path / "in.parquet")
    with pytest.raises(Exception, match="pass --positional"):
        run(settings(model_dir, source, tmp_path / "named"))
    run(settings(model_dir, source, tmp_path / "out", positional=True))
    assert list(read_output(tmp_path / "out")["predict"]) == list(y)


def test_scorer_takes_frames_and_arrow_tables_and_returns_the_same_kind(demo_model_dir, predictor):
    import pyarrow as pa

    frame = iris_frame(50).set_index("id", drop=False)
    scorer = Scorer(demo_model_dir, outputs=("label",), keep_columns=("id",))
    out = scorer(frame)
    assert isinstance(out, pd.DataFrame) and list(out.index) == list(frame.index)
    assert list(out["label"]) == list(expected(predictor, frame)["label"])
    table = scorer(pa.Table.from_pandas(frame, preserve_index=False))
    assert isinstance(table, pa.Table) and table.column("label").to_pylist() == list(out["label"])
    empty = scorer(frame.iloc[:0])
    assert list(empty.columns) == ["id", "label"] and len(empty) == 0
