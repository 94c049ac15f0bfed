"""A model directory -> a verified, loaded ``ModelArtifact``, whatever format it holds.

``FORMATS`` is the one table of what a directory may hold (one module per format):

- an MLflow model: an ``MLmodel`` file of the ``sklearn`` flavor, saved with pickle, cloudpickle
  or skops (``mlflow_model.py``); its signature gives the input schema;
- skops: ``model.skops``, loaded with only the types trusted (``skops_file.py``);
- ONNX: ``model.onnx``, run by ONNX Runtime without scikit-learn (``onnx_file.py``);
- a pickle: ``model.joblib``, ``model.pkl`` or ``model.pickle``, the names KServe's sklearnserver
  accepts, or one other file of those suffixes (``pickle_file.py``).

Every format is verified in the same order: the model file's sha256 against its pins first
(nothing is read from a file that does not match), then loading, then (``Predictor``) the
schema. Unpickling runs whatever code the pickle holds: an unpinned pickle loads with a warning
saying how to pin it, or, with ``require_sha256``, is refused unread.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from ..metadata import METADATA_FILENAME, ModelMetadata, parse_metadata, read_metadata
from . import mlflow_model, onnx_file, pickle_file, skops_file
from .model_file import ModelFile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFormat:
    """How a directory shows that it holds a format, and how that format's file is opened."""

    name: str
    filenames: tuple[str, ...]  # its file's names, in order of preference
    suffixes: tuple[str, ...]  # or the one file of any name ending so
    open: Callable[[Path, ModelMetadata], ModelFile]
    # The file describes the whole directory (MLflow's MLmodel): the model files beside it are its own.
    describes_directory: bool = False


FORMATS = (
    ModelFormat("MLflow model", (mlflow_model.MLMODEL,), (), mlflow_model.open_model, describes_directory=True),
    ModelFormat("skops", skops_file.FILENAMES, skops_file.SUFFIXES, skops_file.open_model),
    ModelFormat("ONNX", onnx_file.FILENAMES, onnx_file.SUFFIXES, onnx_file.open_model),
    ModelFormat("pickle", pickle_file.FILENAMES, pickle_file.SUFFIXES, pickle_file.open_model),
)


# The model files of every format that is one file (not MLflow's MLmodel).
MODEL_FILENAMES = tuple(name for f in FORMATS if not f.describes_directory for name in f.filenames)
MODEL_SUFFIXES = tuple(suffix for f in FORMATS for suffix in f.suffixes)


@dataclass(frozen=True)
class ModelArtifact:
    estimator: Any
    path: Path
    sha256: str
    metadata: ModelMetadata
    format: str = "pickle"

    @property
    def version(self) -> str:
        return self.metadata.version

    @classmethod
    def load(cls, model_dir: str | Path, require_sha256: bool = False, onnx_session=None) -> ModelArtifact:
        """``require_sha256``: refuse a model whose loading runs code (a pickle) unless it is pinned;
        ``onnx_session``: ONNX Runtime's session settings (``onnx.generic.SessionSettings``) for a graph."""
        model_dir = Path(model_dir)
        model_format, marker = locate(model_dir)
        model = model_format.open(marker, read_metadata(model_dir))
        digest = verify(model, require_sha256)
        estimator = model.read(session=onnx_session) if model.takes_session else model.read()
        if not hasattr(estimator, "predict"):
            raise ArtifactError(f"{model.path}: {type(estimator).__name__} has no predict method")
        return cls(estimator=estimator, path=model.path, sha256=digest, metadata=model.metadata, format=model.format)


def verify(model: ModelFile, require_sha256: bool = False) -> str:
    """The model file's sha256, once it matches every pin; refuses an unpinned pickle under
    ``require_sha256`` and warns of one otherwise."""
    digest = file_sha256(model.path)
    pins = [(model.metadata.sha256, METADATA_FILENAME)] if model.metadata.sha256 else []
    pins += model.pins
    for pin, where in pins:
        if pin != digest:
            raise ArtifactError(f"{model.path}: sha256 {digest} does not match {pin} in {where}")
    if model.runs_code and not pins:
        pin = (
            f'pin it with a "sha256" in {METADATA_FILENAME} (model_server.core.artifact.write_metadata writes it, '
            "as python -m model_server.demo does)"
        )
        if require_sha256:
            raise ArtifactError(
                f"{model.path}: an unpinned {model.format} file, refused unread (--require_sha256): loading it "
                f"would run any code it holds; {pin}, or save the model with skops"
            )
        logger.warning(
            "%s: an unpinned %s file: loading it runs any code it holds; %s and start with --require_sha256, "
            "or save the model with skops",
            model.path,
            model.format,
            pin,
        )
    return digest


def locate(model_dir: Path) -> tuple[ModelFormat, Path]:
    """The format a model directory holds and the file that says so."""
    if not model_dir.is_dir():
        raise ArtifactError(f"model directory {model_dir} does not exist")
    for model_format in FORMATS:
        if model_format.describes_directory and (model_dir / model_format.filenames[0]).is_file():
            return model_format, model_dir / model_format.filenames[0]
    found = [(f, path) for f in FORMATS if not f.describes_directory for path in _candidates(f, model_dir)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ArtifactError(
            f"no model file in {model_dir}: expected one of {', '.join(MODEL_FILENAMES)}, or an MLflow model (MLmodel)"
        )
    raise ArtifactError(f"several model files in {model_dir} ({', '.join(p.name for _, p in found)}): keep one")


def _candidates(model_format: ModelFormat, model_dir: Path) -> list[Path]:
    for name in model_format.filenames:
        if (model_dir / name).is_file():
            return [model_dir / name]
    return sorted(p for p in model_dir.iterdir() if p.suffix in model_format.suffixes and p.is_file())


def holds_model(directory: Path) -> bool:
    """Whether a directory has a model file (of any format) of its own."""
    return any(
        p.is_file() and (p.name in f.filenames or p.suffix in f.suffixes) for f in FORMATS for p in directory.iterdir()
    )


def find_model_file(model_dir: Path) -> Path:
    """The file a directory's model is loaded from (for an MLflow model, the one MLmodel names)."""
    model_format, marker = locate(Path(model_dir))
    return model_format.open(marker, ModelMetadata()).path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_metadata(model_dir: Path, **metadata: Any) -> Path:
    """Write metadata.json for the model file in model_dir, its sha256 included (so the server
    refuses any other file in its place)."""
    model_dir = Path(model_dir)
    metadata["sha256"] = file_sha256(find_model_file(model_dir))
    parse_metadata(metadata)  # never write a file the server would refuse
    path = model_dir / METADATA_FILENAME
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path
