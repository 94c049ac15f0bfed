"""Export a model directory to an ONNX model directory and prove parity (``export``); the
command is ``export/__main__.py``."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..core.artifact import ModelArtifact, file_sha256
from ..core.codec import PREDICT, PROBA
from ..core.engines import parity_sample
from ..core.errors import ArtifactError, InvalidInput
from ..core.metadata import METADATA_FILENAME
from ..core.predictor import Predictor

logger = logging.getLogger("model_server.export")

ONNX_FILENAME = "model.onnx"
DEFAULT_TOLERANCE = 1e-5
THRESHOLD_ROWS = 3000  # at most this many rows from split thresholds


def export(model_dir: Path, out: Path, sample: Path | None = None, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Convert, check, write. Returns the parity report; raises ArtifactError (nothing written)."""
    model_dir, out = Path(model_dir), Path(out)
    if out.exists() and any(out.iterdir()):
        raise ArtifactError(f"{out} exists and is not empty: export into a new directory")
    artifact = ModelArtifact.load(model_dir)
    source = Predictor(artifact, backend="sklearn")
    onnx_model = _convert(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-") as tmp:
        staged = Path(tmp) / "export"
        staged.mkdir()
        (staged / ONNX_FILENAME).write_bytes(onnx_model.SerializeToString())
        rows = _sample_rows(source, sample)
        report, allow_nan = _parity(source, staged / ONNX_FILENAME, rows, tolerance)
        if report["problems"]:
            raise ArtifactError(
                "parity check failed: " + "; ".join(report["problems"]) + "\n" + _worst_rows(report, source)
            )
        metadata = _metadata(artifact, source, staged / ONNX_FILENAME, report, allow_nan)
        (staged / METADATA_FILENAME).write_text(json.dumps(metadata, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        staged.rename(out)
    return metadata["export"]


def _convert(source: Predictor):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    schema, estimator = source.schema, source.estimator
    if schema.n_features is None:
        raise ArtifactError("the model does not say how many features it takes (n_features_in_): cannot export it")
    if schema.documents:
        initial = [(schema.names[0], StringTensorType([None, 1]))]
    elif schema.numeric:
        initial = [("X", FloatTensorType([None, schema.n_features]))]
    else:
        initial = [
            (f.name, FloatTensorType([None, 1]) if f.numeric else StringTensorType([None, 1])) for f in schema.features
        ]
    options = {"zipmap": False} if PROBA in source.output_types else None
    try:
        return to_onnx(estimator, initial_types=initial, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    except Exception as exc:  # skl2onnx names the step it has no converter for
        raise ArtifactError(
            f"skl2onnx cannot convert {type(estimator).__name__}: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None


def _sample_rows(source: Predictor, sample: Path | None) -> list:
    """V1 rows (records when the model has names) to check parity on."""
    schema = source.schema
    if sample is not None:
        import pandas as pd

        frame = pd.read_parquet(sample) if sample.suffix == ".parquet" else pd.read_csv(sample)
        if schema.names and not schema.documents:
            missing = [n for n in schema.names if n not in frame.columns]
            if missing:
                raise InvalidInput(f"{sample}: no column for features {missing}")
            return frame[schema.names].to_dict("records")
        return frame.values.tolist() if not schema.documents else frame.iloc[:, 0].astype(str).tolist()
    if schema.documents:
        words = ["goal", "match", "python", "cloud", "pasta", "sauce", "team", "server", "recipe", "the"]
        rng = np.random.default_rng(0)
        return [" ".join(rng.choice(words, size=rng.integers(1, 6))) for _ in range(256)]
    rng = np.random.default_rng(0)
    features = schema.features or []
    numeric = parity_sample(schema.n_features) if schema.numeric else None
    if numeric is not None:
        rows = np.vstack([numeric, *_threshold_rows(source.estimator, schema.n_features)])
        return rows.tolist() if not schema.names else [dict(zip(schema.names, r, strict=True)) for r in rows.tolist()]
    records = []
    for i in range(512):
        record = {}
        for f in features:
            if f.numeric:
                record[f.name] = float(np.float32(rng.normal() * (10 ** (i % 4 - 1))))
            else:
                known = schema.categories.get(f.name) or ["a"]
                record[f.name] = str(known[i % len(known)])
        records.append(record)
    return records


def _threshold_rows(estimator, n_features: int) -> list[np.ndarray]:
    """For a tree model: rows at each split threshold and the float32 values on either side."""
    trees = []
    for tree in np.ravel(getattr(estimator, "estimators_", [estimator])):
        if hasattr(tree, "tree_"):
            trees.append(tree.tree_)
    splits = {(int(f), float(t)) for tree in trees for f, t in zip(tree.feature, tree.threshold, strict=True) if f >= 0}
    if not splits:
        return []
    splits = sorted(splits)[:: max(1, len(splits) * 3 // THRESHOLD_ROWS)]
    base = np.zeros(n_features, dtype=np.float32)
    rows = []
    for feature, threshold in splits:
        t = np.float32(threshold)
        for value in (np.nextafter(t, np.float32(-np.inf)), t, np.nextafter(t, np.float32(np.inf))):
            row = base.copy()
            row[feature] = value
            rows.append(row)
    return [np.array(rows, dtype=np.float64)]


def _parity(source: Predictor, onnx_path: Path, rows: list, tolerance: float) -> tuple[dict, bool]:
    from ..core.onnx.model import load_onnx

    schema = source.schema
    twin = load_onnx(onnx_path, {"classes": _classes(source)})
    if twin.takes_columns or schema.documents:
        twin.takes_columns = not schema.documents
    X = schema.from_rows(rows)
    report = _compare(source, twin, X, tolerance)
    allow_nan = schema.allow_nan
    if allow_nan and schema.numeric:
        holes = np.array(X, dtype=np.float64, copy=True)
        holes[np.random.default_rng(1).random(holes.shape) < 0.2] = np.nan
        nan_report = _compare(source, twin, holes, tolerance)
        if nan_report["problems"]:
            allow_nan = False
            report["nan"] = f"not taken: ONNX answers rows with NaN differently ({'; '.join(nan_report['problems'])})"
        else:
            report["nan"] = f"taken: parity holds on {len(holes)} rows with NaN too"
    return report, allow_nan


def _compare(source: Predictor, twin, X, tolerance: float) -> dict:
    estimator = source.estimator
    expected, got = np.asarray(estimator.predict(X)), np.asarray(twin.predict(_onnx_input(source, X)))
    rows = len(expected)
    problems, worst = [], []
    report = {"rows": rows, "tolerance": tolerance, "max_abs_diff": {}, "problems": problems}
    if PROBA in source.output_types:
        mismatched = np.flatnonzero(expected != got)
        report["label_mismatches"] = len(mismatched)
        if len(mismatched):
            problems.append(f"labels differ on {len(mismatched)} of {rows} rows")
            worst += [(int(i), f"label {expected[i]!r} vs ONNX {got[i]!r}") for i in mismatched[:5]]
        gap = np.abs(estimator.predict_proba(X) - twin.predict_proba(_onnx_input(source, X)))
        by_row = gap.max(axis=1)
        report["max_abs_diff"][PROBA] = float(by_row.max())
        if by_row.max() > tolerance:
            problems.append(f"probabilities differ by up to {by_row.max():.2e} (tolerance {tolerance:g})")
            worst += [(int(i), f"probabilities differ by {by_row[i]:.2e}") for i in np.argsort(-by_row)[:5]]
    else:
        expected, got = expected.astype(np.float64).reshape(len(expected), -1), got.astype(np.float64).reshape(rows, -1)
        scaled = (np.abs(expected - got) / np.maximum(1.0, np.abs(expected))).max(axis=1)
        report["max_abs_diff"][PREDICT] = float(np.abs(expected - got).max())
        if scaled.max() > tolerance:
            problems.append(f"predictions differ by up to {scaled.max():.2e} relative (tolerance {tolerance:g})")
            worst += [(int(i), f"{expected[i].tolist()} vs ONNX {got[i].tolist()}") for i in np.argsort(-scaled)[:5]]
    report["worst"] = worst[:8]
    return report


def _onnx_input(source: Predictor, X):
    """The same rows as the ONNX graph takes them: columns by name for a mixed-type model."""
    schema = source.schema
    if schema.numeric or schema.documents:
        return np.asarray(X, dtype=object).reshape(-1, 1) if schema.documents else X
    return {f.name: np.asarray(X[f.name]) for f in schema.features}


def _classes(source: Predictor) -> list | None:
    classes = getattr(source.estimator, "classes_", None)
    return np.asarray(classes).tolist() if classes is not None and PROBA in source.output_types else None


def _worst_rows(report: dict, source: Predictor) -> str:
    lines = [f"  row {row}: {what}" for row, what in report["worst"]]
    return "worst rows (0-based in the sample):\n" + "\n".join(lines)


def _metadata(artifact: ModelArtifact, source: Predictor, onnx_path: Path, report: dict, allow_nan: bool) -> dict:
    import onnxruntime
    import skl2onnx

    schema = source.schema
    metadata = {"version": source.version}
    if schema.features:
        metadata["features"] = [{"name": f.name, "datatype": f.datatype} for f in schema.features]
    if artifact.metadata.class_labels:
        metadata["class_labels"] = list(artifact.metadata.class_labels)
    if schema.documents:
        metadata["documents"] = True
    report = {k: v for k, v in report.items() if k not in ("problems", "worst")}
    metadata["sha256"] = file_sha256(onnx_path)
    metadata["export"] = {
        "format": "onnx",
        "source": {"file": artifact.path.name, "sha256": artifact.sha256, "estimator": type(source.estimator).__name__},
        "onnx_sha256": metadata["sha256"],
        "classes": _classes(source),
        "allow_nan": allow_nan,
        "parity": report,
        "converter": {"skl2onnx": skl2onnx.__version__, "onnxruntime": onnxruntime.__version__},
    }
    return metadata
