"""Baseline for the benchmark: a stock ``kserve.ModelServer`` serving a model the
way KServe's sklearnserver does.

Written for this project from the documented behaviour of sklearnserver (not a
copy): exactly one ``*.joblib``/``*.pkl``/``*.pickle`` file in ``--model_dir``,
loaded with joblib; the whole batch goes through ``predict`` (or
``predict_proba`` when ``PREDICT_PROBA=true``), with input decoding and response
encoding done by KServe's own ``get_predict_input``/``get_predict_response`` so
the V1, V2 REST and V2 gRPC paths are KServe's unmodified ones.

Run: python -m benchmarks.kserve_sklearn_baseline --model_name iris --model_dir DIR
"""

import argparse
import os
from pathlib import Path

import joblib
import kserve
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response

MODEL_FILE_SUFFIXES = (".joblib", ".pkl", ".pickle")


class SklearnBaselineModel(kserve.Model):
    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.estimator = None

    def load(self) -> bool:
        candidates = sorted(p for p in self.model_dir.iterdir() if p.is_file() and p.name.endswith(MODEL_FILE_SUFFIXES))
        if not candidates:
            raise ModelMissingError(str(self.model_dir))
        if len(candidates) > 1:
            raise RuntimeError(f"expected exactly one model file in {self.model_dir}, found {candidates}")
        self.estimator = joblib.load(candidates[0])
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None):
        try:
            features = get_predict_input(payload)
            # sklearnserver reads the flag on every request, so this does too.
            want_proba = os.environ.get("PREDICT_PROBA", "false").lower() == "true"
            if want_proba and hasattr(self.estimator, "predict_proba"):
                result = self.estimator.predict_proba(features)
            else:
                result = self.estimator.predict(features)
            return get_predict_response(payload, result, self.name)
        except Exception as exc:
            raise InferenceError(str(exc)) from exc


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="directory holding the model file")
    args, _ = parser.parse_known_args()
    model = SklearnBaselineModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
