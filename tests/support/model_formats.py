"""Model directories in every format the server reads: skops files, MLflow models (made with
mlflow-skinny, a test dependency only, in a subprocess so that no test process imports mlflow),
and a shim that tells whether a process imports mlflow at all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from .tools import REPO

MLFLOW_SERIALIZATIONS = ("pickle", "cloudpickle", "skops")


def mixed_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """A string column and two numeric ones (a float and an integer): what MLflow's signature
    records as string, double and long."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], size=80),
            "size": rng.normal(size=80),
            "count": rng.integers(0, 10, size=80),
        }
    )
    labels = ((frame["colour"] == "red") ^ (frame["size"] > 0)).astype(int).to_numpy()
    return frame, labels


def train_mixed():
    """One-hot colour, scaled size and count, a logistic regression: a pipeline skops trusts."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame, labels = mixed_frame()
    columns = ColumnTransformer(
        [
            ("colour", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
            ("numbers", StandardScaler(), ["size", "count"]),
        ]
    )
    return make_pipeline(columns, LogisticRegression()).fit(frame, labels)


def write_mlflow_models(root: Path) -> dict[str, Path]:
    """{serialization: directory} of the mixed pipeline saved by mlflow.sklearn.save_model with each
    serialization MLflow offers, its signature inferred from the training frame."""
    subprocess.run([sys.executable, "-m", "tests.support.model_formats", str(root)], cwd=REPO, check=True)
    return {serialization: root / serialization for serialization in MLFLOW_SERIALIZATIONS}


def write_mlflow_shim(directory: Path, marker: Path) -> Path:
    """A package named ``mlflow`` that records being imported in ``marker``, then fails: put
    ``directory`` first on a process's PYTHONPATH and no real mlflow can be imported there unseen."""
    package = directory / "mlflow"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        f"open({str(marker)!r}, 'a').write('mlflow imported\\n')\n"
        "raise ImportError('this process must not import mlflow')\n"
    )
    return directory


def _save_mlflow_models(root: Path) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    model = train_mixed()
    frame, _ = mixed_frame()
    signature = infer_signature(frame, model.predict(frame))
    for serialization in MLFLOW_SERIALIZATIONS:
        mlflow.sklearn.save_model(
            model,
            root / serialization,
            serialization_format=serialization,
            signature=signature,
            pip_requirements=["scikit-learn"],  # no requirement inference: it runs pip, slowly
        )


if __name__ == "__main__":
    import logging
    import warnings

    # MLflow's advice to prefer skops for pickles, and its note on integer columns: known here.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    _save_mlflow_models(Path(sys.argv[1]))
