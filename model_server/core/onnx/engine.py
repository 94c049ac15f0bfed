"""A scikit-learn estimator converted by skl2onnx and run by ONNX Runtime: the fast twin
``engines.py`` checks for parity before it predicts with it.

Converting a forest takes seconds and importing the converter about one more, at every start.
With a cache file (``--onnx_cache_dir``: one graph per model file's sha256), a start that finds
the graph there loads it into ONNX Runtime without importing skl2onnx; the parity check still
runs, so a stale or damaged file cannot answer wrong: it is converted again and rewritten.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class OnnxEngine:
    """The estimator converted by skl2onnx (or read from ``cache``), run by ONNX Runtime."""

    def __init__(self, estimator, sample, cache: Path | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # batches are small; threads would only contend
        graph = _read(cache)
        if graph is not None:
            try:
                self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
                self.from_cache = True
            except Exception as exc:  # ONNX Runtime's errors for a damaged file: convert again
                logger.warning("%s: not a usable graph (%s); converting again", cache, exc)
                graph = None
        if graph is None:
            graph = _convert(estimator, sample)
            self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            self.from_cache = False
            _write(cache, graph)
        self.classes_ = estimator.classes_
        self.input_name = self.session.get_inputs()[0].name
        self.label_name, self.proba_name = (o.name for o in self.session.get_outputs()[:2])

    def predict(self, X) -> np.ndarray:
        return self._run(self.label_name, X)

    def predict_proba(self, X) -> np.ndarray:
        return self._run(self.proba_name, X).astype(np.float64)

    def _run(self, output: str, X) -> np.ndarray:
        (result,) = self.session.run([output], {self.input_name: np.asarray(X, dtype=np.float32)})
        return result


def _convert(estimator, sample) -> bytes:
    from skl2onnx import to_onnx

    return to_onnx(estimator, sample[:1].astype(np.float32), options={"zipmap": False}).SerializeToString()


def _read(cache: Path | None) -> bytes | None:
    if cache is None:
        return None
    try:
        return cache.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("%s: cannot read the converted graph (%s); converting", cache, exc.strerror)
        return None


def _write(cache: Path | None, graph: bytes) -> None:
    """Written aside and renamed into place: a server starting meanwhile never reads half a graph."""
    if cache is None:
        return
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cache.parent, prefix=".converting-", delete=False) as staged:
            staged.write(graph)
        os.replace(staged.name, cache)
    except OSError as exc:  # a read-only cache: serving goes on, the next start converts again
        logger.warning("%s: cannot keep the converted graph (%s)", cache, exc.strerror)
