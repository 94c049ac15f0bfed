"""A scikit-learn estimator converted by skl2onnx and run by ONNX Runtime: the fast twin
``engines.py`` checks for parity before it predicts with it."""

from __future__ import annotations

import numpy as np


class OnnxEngine:
    """The estimator converted by skl2onnx, run by ONNX Runtime."""

    def __init__(self, estimator, sample):
        import onnxruntime
        from skl2onnx import to_onnx

        onnx_model = to_onnx(estimator, sample[:1].astype(np.float32), options={"zipmap": False})
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # batches are small; threads would only contend
        self.session = onnxruntime.InferenceSession(
            onnx_model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
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
