"""A ``model.onnx`` run by ONNX Runtime, with the face the predictor expects of an estimator.

``predict``, ``predict_proba`` (for a classifier), ``classes_``, ``n_features_in_``,
``feature_names_in_``, ``allow_nan``: enough for the schema, the predictor and the metadata, so
an exported model directory (``python -m model_server.export``) is served without scikit-learn,
scipy or pandas in the process (``import sklearn`` alone costs about a second and 160 MB).

The graph takes one float ``[N, F]`` tensor, or one ``[N, 1]`` tensor per feature (a pipeline
over strings and numbers), and answers a label tensor, then, for a classifier, a probabilities
tensor (no ZipMap: ONNX Runtime Web/Node, tract and Triton's ONNX backend reject its
sequence-of-maps output). ``metadata.json``'s ``export`` object says the classes and whether the
source model took NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .generic import SessionSettings

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(string)": object,
}


def load_onnx(path: Path, export: dict | None = None, settings: SessionSettings | None = None) -> OnnxModel:
    """The model in ``path``: an OnnxClassifier when the graph answers probabilities."""
    import onnxruntime

    options = (settings or SessionSettings()).session_options()  # one thread by default: batches are small
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    kind = OnnxClassifier if len(session.get_outputs()) > 1 else OnnxModel
    return kind(session, export or {})


class OnnxModel:
    """A regressor (or any graph with one output): ``predict`` only."""

    takes_columns = False  # set when the graph has one input per feature

    def __init__(self, session, export: dict):
        self.session = session
        inputs, outputs = session.get_inputs(), session.get_outputs()
        self.inputs = [(i.name, ORT_TYPES.get(i.type, np.float32)) for i in inputs]
        if len(inputs) == 1 and len(inputs[0].shape) == 2 and isinstance(inputs[0].shape[1], int):
            self.n_features_in_ = inputs[0].shape[1]
        else:
            self.takes_columns = True
            self.n_features_in_ = len(inputs)
            self.feature_names_in_ = np.array([i.name for i in inputs], dtype=object)
        self.label_name = outputs[0].name
        self.proba_name = outputs[1].name if len(outputs) > 1 else None
        self.allow_nan = bool(export.get("allow_nan", False))

    def predict(self, X) -> np.ndarray:
        result = self._run(self.label_name, X)
        return result.ravel() if result.ndim == 2 and result.shape[1] == 1 else result

    def _run(self, output: str, X) -> np.ndarray:
        if self.takes_columns:
            feeds = {name: np.asarray(X[name], dtype=dtype).reshape(-1, 1) for name, dtype in self.inputs}
        else:
            feeds = {self.inputs[0][0]: np.asarray(X, dtype=self.inputs[0][1])}
        (result,) = self.session.run([output], feeds)
        return result


class OnnxClassifier(OnnxModel):
    """A classifier: labels, then probabilities, one column per class of ``classes_``."""

    def __init__(self, session, export: dict):
        super().__init__(session, export)
        classes = export.get("classes")
        self.classes_ = np.array(classes) if classes is not None else np.arange(session.get_outputs()[1].shape[-1])

    def predict_proba(self, X) -> np.ndarray:
        return self._run(self.proba_name, X).astype(np.float64)
