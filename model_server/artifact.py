"""Finding, verifying and loading a model directory.

A model directory holds exactly one pickled estimator (``model.joblib``, ``model.pkl`` or
``model.pickle``, the names KServe's sklearnserver accepts) and, optionally, ``metadata.json``:

    {
      "version": "1",                          # reported as model_version
      "features": [{"name": "sepal_length", "datatype": "FP64"}, ...],
      "class_labels": ["setosa", "versicolor", "virginica"],   # one per estimator.classes_
      "sha256": "<hex digest of the model file>"               # verified before unpickling
    }

Every key is optional; what is missing is derived from the estimator.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib

logger = logging.getLogger(__name__)

MODEL_FILENAMES = ("model.joblib", "model.pkl", "model.pickle")
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle")
METADATA_FILENAME = "metadata.json"
METADATA_KEYS = {"version", "features", "class_labels", "sha256"}


class ArtifactError(RuntimeError):
    """The model directory cannot be served; the message says why."""


@dataclass
class ModelArtifact:
    estimator: Any
    path: Path
    sha256: str
    version: str = "1"
    features: list[dict] | None = None
    class_labels: list[str] | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelArtifact:
        model_dir = Path(model_dir)
        path = find_model_file(model_dir)
        metadata = read_metadata(model_dir)
        digest = file_sha256(path)
        expected = metadata.get("sha256")
        # Unpickling runs code: refuse a file that is not the one the metadata vouches for.
        if expected and expected.lower() != digest:
            raise ArtifactError(f"{path}: sha256 {digest} does not match {expected} in {METADATA_FILENAME}")
        try:
            estimator = joblib.load(path)
        except Exception as exc:  # any unpickling failure makes the directory unservable
            raise ArtifactError(f"cannot load {path}: {exc}") from exc
        if not hasattr(estimator, "predict"):
            raise ArtifactError(f"{path}: {type(estimator).__name__} has no predict method")
        return cls(
            estimator=estimator,
            path=path,
            sha256=digest,
            version=str(metadata.get("version", "1")),
            features=metadata.get("features"),
            class_labels=metadata.get("class_labels"),
        )


def find_model_file(model_dir: Path) -> Path:
    if not model_dir.is_dir():
        raise ArtifactError(f"model directory {model_dir} does not exist")
    for name in MODEL_FILENAMES:
        if (model_dir / name).is_file():
            return model_dir / name
    candidates = sorted(p for p in model_dir.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ArtifactError(f"no model file in {model_dir}: expected one of {', '.join(MODEL_FILENAMES)}")
    raise ArtifactError(f"several model files in {model_dir} ({', '.join(p.name for p in candidates)}): keep one")


def read_metadata(model_dir: Path) -> dict:
    path = model_dir / METADATA_FILENAME
    if not path.is_file():
        return {}
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ArtifactError(f"{path}: expected a JSON object")
    unknown = set(metadata) - METADATA_KEYS
    if unknown:
        # A typo ("class_label") would otherwise be silently ignored.
        raise ArtifactError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(METADATA_KEYS)}")
    return metadata


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_metadata(model_dir: Path, **metadata: Any) -> Path:
    """Write metadata.json for the model file in model_dir, sha256 included."""
    model_dir = Path(model_dir)
    metadata["sha256"] = file_sha256(find_model_file(model_dir))
    path = model_dir / METADATA_FILENAME
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path
