"""Step 1: is the new version fit to take traffic? Checked offline, before anything is deployed.

Both versions are loaded with the server's own ``Predictor`` (what loads here loads in the
server), and every prediction goes through ``Predictor.prepare`` and ``predict_batch``: the same
checks and the same engine a request gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn import metrics

from ..core.codec import LABEL, PREDICT, PROBA, V1Request, decode_v1, decode_v2_rest, loads_json
from ..core.errors import ModelServerError
from ..core.predictor import Predictor
from .report import FAIL, PASS, SKIP, WARN, Check, Report
from .settings import RolloutSettings


@dataclass(frozen=True)
class Metric:
    score: object  # (y_true, predicted or probabilities) -> float
    output: str  # what it scores: PREDICT or PROBA
    higher_is_better: bool
    classifier: bool


def _roc_auc(y, probabilities):
    if probabilities.shape[1] == 2:
        return metrics.roc_auc_score(y, probabilities[:, 1])
    return metrics.roc_auc_score(y, probabilities, multi_class="ovr", labels=list(range(probabilities.shape[1])))


METRICS = {
    "accuracy": Metric(metrics.accuracy_score, PREDICT, True, True),
    "balanced_accuracy": Metric(metrics.balanced_accuracy_score, PREDICT, True, True),
    "f1_macro": Metric(lambda y, p: metrics.f1_score(y, p, average="macro"), PREDICT, True, True),
    "roc_auc": Metric(_roc_auc, PROBA, True, True),
    "log_loss": Metric(lambda y, p: metrics.log_loss(y, p, labels=list(range(p.shape[1]))), PROBA, False, True),
    "r2": Metric(metrics.r2_score, PREDICT, True, False),
    "mae": Metric(metrics.mean_absolute_error, PREDICT, False, False),
    "rmse": Metric(metrics.root_mean_squared_error, PREDICT, False, False),
}


class HoldoutError(Exception):
    """The holdout file cannot be scored by this model; the message says why."""


@dataclass
class Validation:
    checks: list[Check] = field(default_factory=list)
    stable: Predictor | None = None
    new: Predictor | None = None

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(check.status != FAIL for check in self.checks)

    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.status == FAIL]


def validate(settings: RolloutSettings, report: Report) -> Validation:
    """Every check in order; a version that does not load stops the rest."""
    result = Validation()

    def record(check: Check) -> None:
        result.checks.append(check)
        report.check(check)

    loaded = {}
    for role, directory in (("stable", settings.stable_model_dir), ("new", settings.model_dir)):
        try:
            loaded[role] = settings.load_predictor(directory, settings.model_name)
        except (ModelServerError, OSError) as exc:
            record(Check("load", FAIL, f"the {role} version in {directory} does not load: {exc}"))
            return result
        if not isinstance(loaded[role], Predictor):
            # The checks below compare estimators' features and answers; a graph's tensors are not that.
            record(
                Check(
                    "load",
                    FAIL,
                    f"the {role} version in {directory} is a generic ONNX graph: rollout validation compares "
                    "estimators (features, labels, probabilities) and does not take one yet",
                )
            )
            return result
    result.stable, result.new = stable, new = loaded["stable"], loaded["new"]
    record(_load_check(stable, new))
    record(_schema_check(stable, new, settings.allow_schema_change))
    record(_sample_check(new, settings.sample))
    record(_holdout_check(stable, new, settings))
    return result


def _describe(predictor: Predictor) -> str:
    return f"{predictor.version} ({type(predictor.estimator).__name__}, {predictor.schema.n_features} features)"


def _load_check(stable: Predictor, new: Predictor) -> Check:
    figures = {"stable_version": stable.version, "new_version": new.version}
    if stable.version == new.version:
        # The analysis tells the two apart by their metrics' version label (metadata.json's "version").
        return Check(
            "load",
            FAIL,
            f'both versions say version {new.version}: give the new one its own "version" in metadata.json, '
            "so that its metrics can be told from the stable one's",
            figures,
        )
    return Check("load", PASS, f"stable {_describe(stable)}, new {_describe(new)}", figures)


def schema_differences(stable: Predictor, new: Predictor) -> list[str]:
    """What differs between the two versions' inputs and outputs, one line each."""
    differences = []
    for kind, old, now in (
        ("input", stable.inputs_metadata(), new.inputs_metadata()),
        ("output", stable.outputs_metadata(), new.outputs_metadata()),
    ):
        old_by_name, new_by_name = {t["name"]: t for t in old}, {t["name"]: t for t in now}
        differences += [f"{kind} {name!r} removed" for name in old_by_name if name not in new_by_name]
        differences += [f"{kind} {name!r} added" for name in new_by_name if name not in old_by_name]
        for name in old_by_name.keys() & new_by_name.keys():
            a, b = old_by_name[name], new_by_name[name]
            for key in ("datatype", "shape"):
                if a[key] != b[key]:
                    differences.append(f"{kind} {name!r}: {key} {a[key]} -> {b[key]}")
        common = [name for name in old_by_name if name in new_by_name]
        if common != [name for name in new_by_name if name in old_by_name]:
            differences.append(f"{kind}s in another order: {list(old_by_name)} -> {list(new_by_name)}")
    return differences


def _schema_check(stable: Predictor, new: Predictor, allowed: bool) -> Check:
    differences = schema_differences(stable, new)
    inputs, outputs = new.inputs_metadata(), new.outputs_metadata()
    if not differences:
        return Check(
            "schema", PASS, f"same inputs ({len(inputs)}) and outputs ({', '.join(t['name'] for t in outputs)})"
        )
    detail = "; ".join(differences)
    if allowed:
        return Check("schema", WARN, f"{detail} (allowed by --allow_schema_change)", {"differences": differences})
    return Check(
        "schema",
        FAIL,
        f"{detail}: clients of the stable version would break (--allow_schema_change to deploy anyway)",
        {"differences": differences},
    )


def _sample_check(new: Predictor, sample: str | None) -> Check:
    """The new version answers every output it offers for the sample."""
    outputs = frozenset(new.output_types)
    try:
        if sample is None:
            X, source, rows = new.schema.probe(), "one row derived from the model's metadata", 1
            if X is None:
                return Check("sample", SKIP, "the model's metadata says too little to derive a row: give --sample")
        else:
            X, rows = _read_sample(new, Path(sample))
            source = f"{rows} rows of {sample}"
        answers = new.predict_batch(X, outputs)
    except (ModelServerError, OSError, ValueError) as exc:
        return Check("sample", FAIL, f"the new version does not answer {sample or 'a row from its metadata'}: {exc}")
    except Exception as exc:  # a failure inside the model: exactly what this check is for
        return Check(
            "sample",
            FAIL,
            f"the new version fails on {sample or 'a row from its metadata'}: {type(exc).__name__}: {exc}",
        )
    return Check("sample", PASS, f"{source} answered ({', '.join(sorted(answers))})", {"rows": rows})


def _read_sample(predictor: Predictor, path: Path):
    """A V1 or V2 request body from PATH -> the checked X and its row count."""
    body = path.read_bytes()
    document = loads_json(body)
    v2 = isinstance(document, dict) and "inputs" in document
    request = decode_v2_rest(body, None) if v2 else decode_v1(document)
    X, _ = predictor.prepare(request)
    return X, len(X)


# -- holdout ----------------------------------------------------------------------------------


def _holdout_check(stable: Predictor, new: Predictor, settings: RolloutSettings) -> Check:
    if settings.holdout is None:
        return Check("holdout", SKIP, "no --holdout: the scores are not compared")
    name = settings.metric
    if name == "auto":
        name = "accuracy" if _is_classifier(new) else "r2"
    metric = METRICS[name]
    if metric.classifier != _is_classifier(new):
        kind = "classifiers" if metric.classifier else "regressors"
        return Check("holdout", FAIL, f"--metric {name} scores {kind}; the new version is not one")
    try:
        table = _read_holdout(Path(settings.holdout), settings.label_column)
    except (OSError, ValueError, HoldoutError) as exc:
        return Check("holdout", FAIL, f"{settings.holdout}: {exc}")
    try:
        new_score = score(new, table, settings.label_column, metric)
    except HoldoutError as exc:
        return Check("holdout", FAIL, f"the new version cannot score {settings.holdout}: {exc}")
    try:
        stable_score = score(stable, table, settings.label_column, metric)
    except HoldoutError as exc:
        status = WARN if settings.allow_schema_change else FAIL
        return Check(
            "holdout",
            status,
            f"the stable version cannot score {settings.holdout}: {exc}",
            {"metric": name, "new": new_score},
        )
    worse_by = (stable_score - new_score) if metric.higher_is_better else (new_score - stable_score)
    figures = {
        "metric": name,
        "new": new_score,
        "stable": stable_score,
        "rows": len(table),
        "worse_by": worse_by,
        "max_regression": settings.max_regression,
    }
    change = "the same" if worse_by == 0 else f"{'worse' if worse_by > 0 else 'better'} by {abs(worse_by):.4f}"
    detail = (
        f"{name} {new_score:.4f} vs stable {stable_score:.4f} on {len(table)} rows "
        f"({change}; --max_regression {settings.max_regression:g})"
    )
    return Check("holdout", FAIL if worse_by > settings.max_regression else PASS, detail, figures)


def _is_classifier(predictor: Predictor) -> bool:
    return PROBA in predictor.output_types or LABEL in predictor.output_types


def _read_holdout(path: Path, label_column: str):
    import pandas as pd  # only here: a rollout without a holdout does not pay for it

    try:
        table = pd.read_csv(path)
    except pd.errors.ParserError as exc:
        raise HoldoutError(f"not a CSV file: {exc}") from None
    except pd.errors.EmptyDataError:
        raise HoldoutError("empty file") from None
    if label_column not in table.columns:
        raise HoldoutError(f"no label column {label_column!r} (--label_column); columns: {list(table.columns)}")
    if table.empty:
        raise HoldoutError("no rows")
    return table


def score(predictor: Predictor, table, label_column: str, metric: Metric) -> float:
    """The metric of PREDICTOR's answers for the holdout TABLE against its labels."""
    features = table.drop(columns=[label_column])
    names = predictor.schema.names
    if names is not None and not predictor.schema.documents:
        missing = [name for name in names if name not in features.columns]
        if missing:
            raise HoldoutError(f"no column for features {missing}")
        features = features[names]
    elif predictor.schema.n_features is not None and features.shape[1] != predictor.schema.n_features:
        raise HoldoutError(f"{features.shape[1]} feature columns; the model takes {predictor.schema.n_features}")
    instances = features.astype(object).where(features.notna(), None).values.tolist()
    try:
        X, _ = predictor.prepare(V1Request(instances, [PREDICT]))
        answers = predictor.predict_batch(X, frozenset([metric.output]))
    except ModelServerError as exc:
        raise HoldoutError(str(exc)) from None
    except Exception as exc:  # a failure inside the model
        raise HoldoutError(f"the model failed: {type(exc).__name__}: {exc}") from None
    y = table[label_column].to_numpy()
    if not metric.classifier:
        return float(metric.score(y.astype(np.float64), answers[PREDICT]))
    return float(metric.score(*_class_targets(predictor, y, answers, metric.output)))


def _class_targets(predictor: Predictor, y: np.ndarray, answers: dict, output: str):
    """Labels and answers compared as the model's classes (or its metadata's class labels)."""
    classes = [str(c) for c in predictor.estimator.classes_]
    labels = [str(c) for c in predictor.class_labels]
    truth = np.array([str(v) for v in y], dtype=object)
    known = set(truth)
    if known <= set(classes):
        names = classes
    elif known <= set(labels):
        names = labels
    else:
        unknown = sorted(known - set(classes))[:5]
        raise HoldoutError(f"labels {unknown} are none of the model's classes {classes[:10]}")
    if output == PROBA:
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[v] for v in truth]), answers[PROBA]
    predicted = np.searchsorted(predictor.estimator.classes_, answers[PREDICT])
    return truth, np.array(names, dtype=object)[predicted]
