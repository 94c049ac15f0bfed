"""What predict calls: the estimator itself, or a faster twin that gives the same answers.

scikit-learn spends far more per call on bookkeeping than on arithmetic, and micro-batching only
divides that cost by the batch size:

- A logistic regression's ``predict`` call costs the same whatever the rows, and nearly all of it
  is input validation (array-API and dataframe detection, ``check_array``) that our schema check
  has already done. ``LinearEngine`` computes scikit-learn's own decision formula from the fitted
  ``coef_``/``intercept_`` without it.
- A forest costs a Python call per tree, for one row as for sixty-four. The same forest converted
  by skl2onnx runs in ONNX Runtime in a tiny fraction of that (``onnx/engine.py``; onnxruntime
  and skl2onnx are default dependencies).

A twin is used only if it gives the estimator's answers on a parity sample of numeric rows;
otherwise the server says why and keeps scikit-learn. ``--backend``:

- ``auto`` (default): ``LinearEngine`` for a logistic regression, ``OnnxEngine`` for a scikit-learn
  ensemble (forests, boosting, bagging) when ONNX Runtime is installed, the estimator otherwise.
  Linear models are not sent to ONNX here: importing the converter would lengthen cold start.
- ``onnx``: ``OnnxEngine`` for every classifier over numeric features that converts.
- ``sklearn``: always the estimator's own methods.

ONNX computes in float32; scikit-learn's trees split on float32 values too, so tree models agree
exactly, and linear models agree to float32 precision in probabilities. ``LinearEngine`` computes
in float64 exactly as scikit-learn does. (Figures: docs/architecture.md.)
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import numpy as np

from .onnx.engine import OnnxEngine
from .onnx.model import OnnxModel

logger = logging.getLogger(__name__)

PARITY_ROWS = 512
PROBABILITY_TOLERANCE = 1e-5
# A batch the twin predicts within this time runs on the event loop: handing it to the predict
# thread and back (a wake-up and two GIL handovers) costs about as much, and the loop is blocked
# no longer than by parsing a large request.
INLINE_SECONDS = 100e-6


def engine_for(
    estimator,
    backend: str,
    n_features: int | None,
    numeric: bool,
    allow_nan: bool = False,
    onnx_cache: Path | None = None,
):
    """The engine for ``--backend`` sklearn, auto or onnx: the estimator or its faithful twin.
    ``allow_nan``: the model takes NaN, so the parity sample holds NaN too; ``onnx_cache``: where
    the converted graph of this estimator is kept between starts (``onnx/engine.py``)."""
    if isinstance(estimator, OnnxModel):  # an exported model: it runs in ONNX Runtime already
        if not estimator.takes_columns:
            # Timed on an even grid of values, not parity_sample's random rows: numpy.random would be
            # this import's only user in the edge runtime (about 2 MB).
            grid = np.linspace(-100.0, 100.0, PARITY_ROWS * estimator.n_features_in_)
            estimator.inline_max_rows = _rows_within(INLINE_SECONDS, estimator, grid.reshape(PARITY_ROWS, -1))
        return estimator
    if backend == "sklearn":
        return estimator
    if backend == "auto":
        if _is_logistic_regression(estimator):
            return _checked_twin(estimator, LinearEngine, n_features, numeric, allow_nan)
        if not _is_ensemble(estimator):
            return estimator
        if not _onnx_installed():
            logger.info(
                "backend auto: ONNX Runtime is not installed (pip install onnxruntime skl2onnx: default "
                "dependencies); using scikit-learn"
            )
            return estimator
    return _checked_twin(estimator, OnnxEngine, n_features, numeric, allow_nan, cache=onnx_cache)


def _is_ensemble(estimator) -> bool:
    """A scikit-learn ensemble, alone or as the last step of a Pipeline."""
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if isinstance(steps, list) and steps else estimator
    return type(final).__module__.startswith("sklearn.ensemble")


def _is_logistic_regression(estimator) -> bool:
    from sklearn.linear_model import LogisticRegression

    return isinstance(estimator, LogisticRegression) and isinstance(estimator.coef_, np.ndarray)


def _onnx_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "skl2onnx"))


def _checked_twin(
    estimator, engine_type, n_features: int | None, numeric: bool, allow_nan: bool = False, **engine_options
):
    """``engine_type(estimator, sample, **engine_options)``, if it converts and passes the parity
    check; else the estimator."""
    name = engine_type.__name__
    if not numeric or n_features is None or not hasattr(estimator, "predict_proba"):
        logger.warning("%s: only classifiers over numeric features convert; using scikit-learn", name)
        return estimator
    sample = parity_sample(n_features)
    try:
        twin = engine_type(estimator, sample, **engine_options)
        problem = parity_problem(estimator, twin, sample)
        nan_problem = allow_nan and parity_problem(estimator, twin, parity_sample(n_features, allow_nan=True))
    except ImportError:
        logger.warning(
            "%s: skl2onnx/onnxruntime not installed (pip install onnxruntime skl2onnx: default "
            "dependencies); using scikit-learn",
            name,
        )
        return estimator
    except Exception as exc:  # any converter or runtime failure means: keep scikit-learn
        logger.warning("%s: conversion failed (%s: %s); using scikit-learn", name, type(exc).__name__, exc)
        return estimator
    if problem and getattr(twin, "from_cache", False):  # not this estimator's graph: convert it anew
        logger.warning("%s: the cached graph's %s; converting again", name, problem)
        engine_options["cache"].unlink(missing_ok=True)
        return _checked_twin(estimator, engine_type, n_features, numeric, allow_nan, **engine_options)
    if problem:
        logger.warning("%s: %s on the parity sample; using scikit-learn", name, problem)
        return estimator
    twin.inline_max_rows = _rows_within(INLINE_SECONDS, twin, sample)
    logger.info(
        "%s: %s %s, parity holds on %d rows; batches up to %d rows predicted on the event loop",
        name,
        type(estimator).__name__,
        "read from the conversion cache" if getattr(twin, "from_cache", False) else "converted",
        len(sample),
        twin.inline_max_rows,
    )
    if nan_problem:
        # ONNX's trees send missing values down other branches than scikit-learn's: never let the
        # twin answer a row with NaN.
        logger.info("%s: %s on rows with NaN; batches with NaN are predicted by scikit-learn", name, nan_problem)
        return NanToEstimator(twin, estimator)
    return twin


class NanToEstimator:
    """A twin that gives scikit-learn's answers except on missing values: a batch holding NaN is
    predicted by the estimator itself (and never on the event loop: see ``fast_for``)."""

    def __init__(self, twin, estimator):
        self.twin, self.estimator = twin, estimator
        self.classes_ = estimator.classes_
        self.inline_max_rows = twin.inline_max_rows
        self.name = f"{type(twin).__name__} (scikit-learn for rows with NaN)"

    def fast_for(self, X) -> bool:
        return not np.isnan(X).any()

    def predict(self, X) -> np.ndarray:
        return (self.twin if self.fast_for(X) else self.estimator).predict(X)

    def predict_proba(self, X) -> np.ndarray:
        return (self.twin if self.fast_for(X) else self.estimator).predict_proba(X)


def _rows_within(seconds: float, twin, sample: np.ndarray) -> int:
    """How many rows the twin predicts within ``seconds``, from its best time on one row and on the
    whole sample (a fixed cost per call plus a cost per row)."""

    def best_time(X) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            twin.predict(X)
            times.append(time.perf_counter() - start)
        return min(times)

    one, every = best_time(sample[:1]), best_time(sample)
    if one > seconds:
        return 0
    per_row = max((every - one) / (len(sample) - 1), 1e-9)
    return 1 + int((seconds - one) / per_row)


class LinearEngine:
    """scikit-learn's LogisticRegression formulas (``LinearClassifierMixin.decision_function``,
    softmax, or expit for two classes) on the fitted coefficients, without the per-call validation."""

    def __init__(self, estimator, sample=None):
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        self._expit, self._softmax = expit, softmax
        self.coef_t = np.ascontiguousarray(estimator.coef_.T, dtype=np.float64)
        self.intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        self.classes_ = estimator.classes_

    def decision_function(self, X) -> np.ndarray:
        scores = X @ self.coef_t + self.intercept
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        return self.classes_[(scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = self._expit(scores)
            return np.column_stack([1 - positive, positive])
        return self._softmax(scores, copy=False)


def parity_sample(n_features: int, allow_nan: bool = False) -> np.ndarray:
    """Rows at several scales, so that every region of the feature space gets a look. Exactly
    representable in float32, so that the check is about the model, not ONNX's cast. For a model
    that takes NaN, one value in five is NaN: missing values take their own branches."""
    rng = np.random.default_rng(0)
    scales = np.repeat([0.1, 1.0, 10.0, 100.0], PARITY_ROWS // 4)[:, None]
    sample = (rng.normal(size=(PARITY_ROWS, n_features)) * scales).astype(np.float32).astype(np.float64)
    if allow_nan:
        sample[rng.random(sample.shape) < 0.2] = np.nan
    return sample


def parity_problem(estimator, twin, sample: np.ndarray) -> str | None:
    expected, got = np.asarray(estimator.predict(sample)), twin.predict(sample)
    if expected.shape != got.shape or not (expected == got).all():
        return f"labels differ on {int((expected != got).sum())} of {len(sample)} rows"
    gap = float(np.abs(estimator.predict_proba(sample) - twin.predict_proba(sample)).max())
    if gap > PROBABILITY_TOLERANCE:
        return f"probabilities differ by up to {gap:.2e}"
    return None
