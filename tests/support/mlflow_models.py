"""The models the MLflow scoring protocol is tested on, each as our server serves it and as
``mlflow models serve`` does (an MLflow model directory of the same fitted estimator):

    mixed         a ColumnTransformer pipeline (a string and two numeric columns), an MLflow model with
                  its inferred signature: both servers serve the same directory
    pickle        an iris LogisticRegression fitted on a DataFrame: ``pickle/model.joblib`` for ours,
                  ``pickle-mlflow/`` (with a signature) for MLflow's
    multi_output  a two-target LinearRegression: ``multi_output/model.joblib``, ``multi_output-mlflow/``
    proba_params  iris again, saved with ``pyfunc_predict_fn="predict_proba"`` and a signature that
                  declares a param: both serve the same directory

Written in a subprocess with mlflow-skinny (a test dependency), as tests/support/model_formats.py
does, so that no test process imports mlflow to make them.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .tools import REPO

# name: (our model directory, MLflow's), relative to the root they are written in.
MODELS = {
    "mixed": ("mixed", "mixed"),
    "pickle": ("pickle", "pickle-mlflow"),
    "multi_output": ("multi_output", "multi_output-mlflow"),
    "proba_params": ("proba_params", "proba_params"),
}


def iris_frame() -> tuple[pd.DataFrame, np.ndarray]:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return frame, iris.target.to_numpy()


def multi_output_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    targets = np.column_stack([frame @ [1.0, 2.0, -1.0], frame @ [0.5, -0.25, 3.0]]) + 0.1
    return frame, targets


def write_models(root: Path) -> dict[str, tuple[Path, Path]]:
    """{name: (our directory, MLflow's)} under ``root``."""
    subprocess.run([sys.executable, "-m", "tests.support.mlflow_models", str(root)], cwd=REPO, check=True)
    return {name: (root / ours, root / theirs) for name, (ours, theirs) in MODELS.items()}


def _save(root: Path) -> None:
    import joblib
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.linear_model import LinearRegression, LogisticRegression

    from .model_formats import mixed_frame, train_mixed

    logging.getLogger("mlflow").setLevel(logging.ERROR)  # its advice to prefer skops: known here

    def save(model, directory: str, frame, **options) -> None:
        mlflow.sklearn.save_model(
            model,
            root / directory,
            serialization_format="cloudpickle",
            signature=options.pop("signature", None) or infer_signature(frame, model.predict(frame)),
            pip_requirements=["scikit-learn"],  # no requirement inference: it runs pip, slowly
            **options,
        )

    mixed = train_mixed()
    save(mixed, "mixed", mixed_frame()[0])

    iris, labels = iris_frame()
    classifier = LogisticRegression(max_iter=500).fit(iris, labels)
    (root / "pickle").mkdir(parents=True)
    joblib.dump(classifier, root / "pickle" / "model.joblib")
    save(classifier, "pickle-mlflow", iris)

    frame, targets = multi_output_frame()
    regressor = LinearRegression().fit(frame, targets)
    (root / "multi_output").mkdir(parents=True)
    joblib.dump(regressor, root / "multi_output" / "model.joblib")
    save(regressor, "multi_output-mlflow", frame)

    signature = infer_signature(iris, classifier.predict_proba(iris), params={"temperature": 1.0})
    save(classifier, "proba_params", iris, signature=signature, pyfunc_predict_fn="predict_proba")


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    _save(Path(sys.argv[1]))
