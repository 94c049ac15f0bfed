"""``python -m model_server.demo DIR [--version N]``: write the embedded demo model.

Iris, 4 named float features, 3 labelled classes: ``DIR/model.joblib`` plus ``DIR/metadata.json``.
Version 2 is trained differently (a different regularisation strength and a random forest) so a
canary rollout can tell the two apart by ``model_version`` and, sometimes, by its answers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from .core.artifact import write_metadata

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASS_LABELS = ["setosa", "versicolor", "virginica"]


def train(version: int):
    X, y = load_iris(return_X_y=True)
    if version == 1:
        return LogisticRegression(max_iter=1000).fit(X, y)
    return RandomForestClassifier(n_estimators=20, max_depth=4, random_state=version).fit(X, y)


def write_demo_model(model_dir: str | Path, version: int = 1) -> Path:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(train(version), model_dir / "model.joblib")
    write_metadata(
        model_dir,
        version=str(version),
        features=[{"name": name, "datatype": "FP64"} for name in FEATURES],
        class_labels=CLASS_LABELS,
    )
    return model_dir


def publish_version(versions: Path, version: int, source: Path) -> Path:
    """Copy the model directory SOURCE in as version VERSION of a versions directory, as a model
    writer should while a server watches it: written aside, then renamed into place, so the
    watcher never sees half a version."""
    staging = versions.parent / f".staging-{version}"
    shutil.copytree(source, staging)
    metadata = json.loads((staging / "metadata.json").read_text())
    (staging / "metadata.json").write_text(json.dumps({**metadata, "version": str(version)}))
    os.rename(staging, versions / str(version))
    return versions / str(version)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_server.demo", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="directory to write model.joblib and metadata.json into")
    parser.add_argument("--version", type=int, default=1, choices=[1, 2], help="which demo model version")
    args = parser.parse_args(argv)
    print(write_demo_model(args.model_dir, args.version))


if __name__ == "__main__":
    main()
