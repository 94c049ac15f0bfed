"""Step 1, check by check, in-process on real model directories."""

from __future__ import annotations

import io
import json

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from model_server.rollout.report import Report
from model_server.rollout.settings import RolloutSettings
from model_server.rollout.validate import validate

from .models import FEATURES, OUTLIER, dataset, fitted, write_holdout, write_model, write_versions


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("validate")


@pytest.fixture(scope="module")
def versions(root):
    return write_versions(root / "models")


@pytest.fixture(scope="module")
def holdout(root):
    return write_holdout(root / "holdout.csv")


def checks(new, stable, *args: str) -> dict[str, tuple[str, str, dict]]:
    argv = ["--validate_only", "--model_dir", str(new), "--stable_model_dir", str(stable), *args]
    result = validate(RolloutSettings.from_args(argv, environ={}), Report(io.StringIO()))
    return {c.name: (c.status, c.detail, c.figures) for c in result.checks}


def test_a_good_version_passes_every_check_with_its_figures(versions, holdout):
    found = checks(versions["good"], versions["stable"], "--holdout", str(holdout))
    assert [status for status, _, _ in found.values()] == ["PASS"] * 4
    assert found["load"][1] == "stable 1 (Degraded, 4 features), new 2 (Degraded, 4 features)"
    assert found["schema"][1] == "same inputs (4) and outputs (predict, label, predict_proba)"
    figures = found["holdout"][2]
    assert figures["metric"] == "accuracy" and figures["rows"] == 300
    assert abs(figures["new"] - figures["stable"]) <= 0.01


def test_the_same_version_label_is_refused(versions):
    status, detail, _ = checks(versions["stable"], versions["stable"])["load"]
    assert status == "FAIL"
    assert 'both versions say version 1: give the new one its own "version" in metadata.json' in detail


def test_a_directory_that_does_not_load_is_named(versions, root):
    empty = root / "empty"
    empty.mkdir()
    found = checks(empty, versions["stable"])
    assert list(found) == ["load"]
    assert found["load"][0] == "FAIL" and f"the new version in {empty} does not load: " in found["load"][1]


def test_a_changed_schema_is_refused_or_with_the_flag_reported(versions, root):
    X, y = dataset()
    wider = write_model(
        root / "wider", LogisticRegression().fit(X[:, :3], y), "2", features=["f0", "f1", "g2"]
    )  # f2, f3 gone, g2 new
    status, detail, figures = checks(wider, versions["stable"])["schema"]
    assert status == "FAIL"
    assert figures["differences"] == ["input 'f2' removed", "input 'f3' removed", "input 'g2' added"]
    assert detail.endswith("clients of the stable version would break (--allow_schema_change to deploy anyway)")
    assert checks(wider, versions["stable"], "--allow_schema_change")["schema"][0] == "WARN"


def test_an_output_that_changed_type_is_a_schema_change(versions, root):
    X, y = dataset()
    regressor = write_model(root / "regressor", LinearRegression().fit(X[:600], y[:600]), "2")
    differences = checks(regressor, versions["stable"])["schema"][2]["differences"]
    assert differences == [
        "output 'label' removed",
        "output 'predict_proba' removed",
        "output 'predict': datatype INT64 -> FP64",
    ]


def test_a_sample_file_is_answered_in_v1_and_v2(versions, root):
    v1 = root / "v1.json"
    v1.write_text(json.dumps({"instances": [[0.1, 0.2, 0.3, 0.4], dict(zip(FEATURES, [1, 2, 3, 4], strict=True))][:1]}))
    v2 = root / "v2.json"
    v2.write_text(json.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": [0.0] * 8}]}))
    assert checks(versions["good"], versions["stable"], "--sample", str(v1))["sample"][:2] == (
        "PASS", f"1 rows of {v1} answered (label, predict, predict_proba)",
    )  # fmt: skip
    assert checks(versions["good"], versions["stable"], "--sample", str(v2))["sample"][2] == {"rows": 2}


def test_a_sample_the_new_version_cannot_take_or_fails_on_is_refused(versions, root):
    wrong = root / "wrong.json"
    wrong.write_text(json.dumps({"instances": [[1, 2, 3]]}))
    status, detail, _ = checks(versions["good"], versions["stable"], "--sample", str(wrong))["sample"]
    assert status == "FAIL" and "instance 0" in detail and "4" in detail
    outlier = root / "outlier.json"
    outlier.write_text(json.dumps({"instances": [OUTLIER]}))
    status, detail, _ = checks(versions["flaky"], versions["stable"], "--sample", str(outlier))["sample"]
    assert (status, detail) == (
        "FAIL", f"the new version fails on {outlier}: RuntimeError: simulated model failure on an outlier",
    )  # fmt: skip
    status, detail, _ = checks(versions["good"], versions["stable"], "--sample", str(root / "absent.json"))["sample"]
    assert status == "FAIL" and "No such file" in detail


def test_a_worse_version_is_refused_with_both_scores(versions, root, holdout):
    worse = write_model(root / "worse", fitted(shuffle_labels=True), "2")
    status, detail, figures = checks(worse, versions["stable"], "--holdout", str(holdout))["holdout"]
    assert status == "FAIL"
    assert figures["stable"] - figures["new"] == pytest.approx(figures["worse_by"]) and figures["worse_by"] > 0.05
    assert f"(worse by {figures['worse_by']:.4f}; --max_regression 0.01)" in detail
    allowed = checks(worse, versions["stable"], "--holdout", str(holdout), "--max_regression", "0.5")["holdout"]
    assert allowed[0] == "PASS"


def test_lower_is_better_metrics_are_compared_the_other_way(versions, root, holdout):
    worse = write_model(root / "worse-loss", fitted(shuffle_labels=True), "2")
    status, _, figures = checks(worse, versions["stable"], "--holdout", str(holdout), "--metric", "log_loss")["holdout"]
    assert status == "FAIL" and figures["new"] > figures["stable"]
    status, _, figures = checks(versions["good"], versions["stable"], "--holdout", str(holdout), "--metric", "roc_auc")[
        "holdout"
    ]
    assert status == "PASS" and 0.5 < figures["new"] <= 1


def test_a_regressor_is_scored_by_r2(root):
    X, _ = dataset()
    target = X[:, 0] * 2 + X[:, 1]
    stable = write_model(root / "reg1", LinearRegression().fit(X[:600], target[:600]), "1")
    new = write_model(root / "reg2", LinearRegression().fit(X[:600], target[:600] + 0.01), "2")
    table = root / "reg.csv"
    pd.DataFrame({**{f: X[600:, i] for i, f in enumerate(FEATURES)}, "label": target[600:]}).to_csv(table, index=False)
    status, _, figures = checks(new, stable, "--holdout", str(table))["holdout"]
    assert status == "PASS" and figures["metric"] == "r2" and figures["new"] > 0.99
    assert checks(new, stable, "--holdout", str(table), "--metric", "accuracy")["holdout"][:2] == (
        "FAIL", "--metric accuracy scores classifiers; the new version is not one",
    )  # fmt: skip


def test_holdout_labels_may_be_the_class_labels_of_the_metadata(root):
    names = ["no", "yes"]
    stable = write_model(root / "named1", fitted(), "1", class_labels=names)
    new = write_model(root / "named2", fitted(C=0.5), "2", class_labels=names)
    table = write_holdout(root / "named.csv", labels=names)
    assert checks(new, stable, "--holdout", str(table))["holdout"][0] == "PASS"
    unknown = write_holdout(root / "unknown.csv", labels=["cat", "dog"])
    status, detail, _ = checks(new, stable, "--holdout", str(unknown))["holdout"]
    assert status == "FAIL" and "labels ['cat', 'dog'] are none of the model's classes ['0', '1']" in detail


def test_a_holdout_that_does_not_fit_names_what_is_wrong(versions, root, holdout):
    no_label = root / "no-label.csv"
    no_label.write_text("f0,f1,f2,f3\n1,2,3,4\n")
    assert (
        "no label column 'label' (--label_column)"
        in checks(versions["good"], versions["stable"], "--holdout", str(no_label))["holdout"][1]
    )
    missing = root / "missing.csv"
    missing.write_text("f0,f1,label\n1,2,0\n")
    status, detail, _ = checks(versions["good"], versions["stable"], "--holdout", str(missing))["holdout"]
    assert status == "FAIL" and "no column for features ['f2', 'f3']" in detail
    text = root / "text.csv"
    text.write_text("f0,f1,f2,f3,label\n1,2,three,4,0\n")
    status, detail, _ = checks(versions["good"], versions["stable"], "--holdout", str(text))["holdout"]
    assert status == "FAIL" and "f2" in detail


def test_no_holdout_skips_the_comparison(versions):
    assert checks(versions["good"], versions["stable"])["holdout"][:2] == (
        "SKIP", "no --holdout: the scores are not compared",
    )  # fmt: skip


def test_the_estimators_are_real_pickles(versions):
    assert type(joblib.load(versions["flaky"] / "model.joblib")).__name__ == "Degraded"
