"""ONNX Runtime backend: ``--backend auto`` (the default) or ``onnx``; needs ``pip install model-server[onnx]``.

scikit-learn spends milliseconds per call on bookkeeping: a 100-tree forest takes ~4.5 ms for one
row or for sixty-four (a Python call per tree), so it caps throughput whatever the batching. The
same forest converted by skl2onnx runs in ONNX Runtime in ~10 us for one row. The converted model
is used only if it gives the same answers as the estimator on a parity sample; otherwise the
server says why and keeps scikit-learn.

``auto`` converts scikit-learn's ensembles only (forests, boosting, bagging), where that per-member
cost is: a linear model gains little, and importing the converter would cost its cold start ~1 s.
``onnx`` tries every classifier over numeric features (the forest and linear models that dominate
tabular serving). ONNX computes in float32; scikit-learn's trees split on float32 values too, so
tree models agree exactly, and linear models agree to ~1e-7 in probabilities.
"""

from __future__ import annotations

import importlib.util
import logging

import numpy as np

logger = logging.getLogger(__name__)

PARITY_ROWS = 512
PROBABILITY_TOLERANCE = 1e-5


class OnnxClassifier:
    """Duck-types the estimator methods the model calls: ``predict`` and ``predict_proba``."""

    def __init__(self, session, classes):
        self.session = session
        self.classes_ = classes
        self.input_name = session.get_inputs()[0].name
        self.label_name, self.proba_name = (o.name for o in session.get_outputs()[:2])

    def predict(self, X) -> np.ndarray:
        return self._run(self.label_name, X)

    def predict_proba(self, X) -> np.ndarray:
        return self._run(self.proba_name, X).astype(np.float64)

    def _run(self, output: str, X) -> np.ndarray:
        (result,) = self.session.run([output], {self.input_name: np.asarray(X, dtype=np.float32)})
        return result


def engine_for(estimator, backend: str, n_features: int | None, numeric: bool):
    """What predict should call for ``--backend`` sklearn, auto or onnx: the estimator or its twin."""
    if backend == "sklearn" or (backend == "auto" and not is_ensemble(estimator)):
        return estimator
    if backend == "auto" and not _installed():
        logger.info("backend auto: ONNX Runtime is not installed (pip install model-server[onnx]); using scikit-learn")
        return estimator
    return convert(estimator, n_features, numeric) or estimator


def is_ensemble(estimator) -> bool:
    """A scikit-learn ensemble, alone or as the last step of a Pipeline."""
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else estimator
    return type(final).__module__.startswith("sklearn.ensemble")


def _installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "skl2onnx"))


def convert(estimator, n_features: int | None, numeric: bool) -> OnnxClassifier | None:
    """The estimator in ONNX Runtime, or None (with the reason logged) where that is not safe."""
    if not numeric or n_features is None or not hasattr(estimator, "predict_proba"):
        logger.warning("ONNX backend: only classifiers over numeric features convert; using scikit-learn")
        return None
    try:
        import onnxruntime
        from skl2onnx import to_onnx
    except ImportError:
        logger.warning("ONNX backend: skl2onnx/onnxruntime not installed (pip install model-server[onnx]); using scikit-learn")
        return None
    sample = parity_sample(n_features)
    try:
        onnx_model = to_onnx(estimator, sample[:1].astype(np.float32), options={"zipmap": False})
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # batches are small; threads would only contend
        session = onnxruntime.InferenceSession(
            onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
        converted = OnnxClassifier(session, estimator.classes_)
        problem = parity_problem(estimator, converted, sample)
    except Exception as exc:  # any converter or runtime failure means: keep scikit-learn
        logger.warning("ONNX backend: conversion failed (%s: %s); using scikit-learn", type(exc).__name__, exc)
        return None
    if problem:
        logger.warning("ONNX backend: %s on the parity sample; using scikit-learn", problem)
        return None
    logger.info("ONNX backend: %s converted, parity holds on %d rows", type(estimator).__name__, len(sample))
    return converted


def parity_sample(n_features: int) -> np.ndarray:
    """Rows at several scales, so that every region of the feature space gets a look."""
    rng = np.random.default_rng(0)
    scales = np.repeat([0.1, 1.0, 10.0, 100.0], PARITY_ROWS // 4)[:, None]
    return rng.normal(size=(PARITY_ROWS, n_features)) * scales


def parity_problem(estimator, converted: OnnxClassifier, sample: np.ndarray) -> str | None:
    # Compare on the float32 values ONNX sees, so the check is about the model, not the cast.
    sample = sample.astype(np.float32).astype(np.float64)
    expected, got = np.asarray(estimator.predict(sample)), converted.predict(sample)
    if expected.shape != got.shape or not (expected == got).all():
        return f"labels differ on {int((expected != got).sum())} of {len(sample)} rows"
    gap = float(np.abs(estimator.predict_proba(sample) - converted.predict_proba(sample)).max())
    if gap > PROBABILITY_TOLERANCE:
        return f"probabilities differ by up to {gap:.2e}"
    return None
