"""Finding, verifying and loading a model directory.

A model directory holds exactly one pickled estimator (``model.joblib``, ``model.pkl`` or
``model.pickle``, the names KServe's sklearnserver accepts) and, optionally, ``metadata.json``
(see ``metadata.py``). Verification comes first: the file's sha256 is checked against the
metadata's before anything is unpickled, because unpickling runs code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ArtifactError
from .metadata import METADATA_FILENAME, ModelMetadata, parse_metadata, read_metadata

MODEL_FILENAMES = ("model.joblib", "model.pkl", "model.pickle", "model.onnx")
MODEL_SUFFIXES = (".joblib", ".pkl", ".pickle", ".onnx")
# How pickle and joblib files start: a protocol 2+ pickle, or joblib's compressed containers
# (zlib, gzip, bz2, xz, lzma, lz4).
_PICKLE_STARTS = (b"\x80", b"\x78", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"]\x00", b'\x04"M\x18')
# What an unpickling failure of these types means, for the one-line reason (an EOFError has no
# message of its own, and "KeyError: 208" says nothing).
_LOAD_FAILURES = {
    EOFError: "the file is truncated or not a pickle",
    ModuleNotFoundError: "the pickle needs a module this server's environment does not have",
    AttributeError: "the pickle names a class or function its module does not have: a version mismatch?",
}


@dataclass(frozen=True)
class ModelArtifact:
    estimator: Any
    path: Path
    sha256: str
    metadata: ModelMetadata

    @property
    def version(self) -> str:
        return self.metadata.version

    @classmethod
    def load(cls, model_dir: str | Path) -> ModelArtifact:
        model_dir = Path(model_dir)
        path = find_model_file(model_dir)
        metadata = read_metadata(model_dir)
        digest = file_sha256(path)
        if metadata.sha256 is not None and metadata.sha256 != digest:
            raise ArtifactError(f"{path}: sha256 {digest} does not match {metadata.sha256} in {METADATA_FILENAME}")
        estimator = _load_onnx(path, metadata) if path.suffix == ".onnx" else _unpickle(path)
        if not hasattr(estimator, "predict"):
            raise ArtifactError(f"{path}: {type(estimator).__name__} has no predict method")
        return cls(estimator=estimator, path=path, sha256=digest, metadata=metadata)


def _load_onnx(path: Path, metadata: ModelMetadata):
    """An ONNX graph, for ONNX Runtime: no unpickling, and no scikit-learn."""
    from .onnx_model import load_onnx

    try:
        return load_onnx(path, metadata.export)
    except ImportError:
        raise ArtifactError(f"{path}: serving ONNX needs ONNX Runtime: pip install model-server[onnx]") from None
    except Exception as exc:  # ONNX Runtime's own errors say what is wrong with the graph
        raise ArtifactError(f"cannot load {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc


def _unpickle(path: Path):
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # any unpickling failure makes the directory unservable
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ArtifactError(f"cannot load {path}: {detail}{_meaning(exc, path)}") from exc


def _meaning(exc: Exception, path: Path) -> str:
    meaning = next((text for kind, text in _LOAD_FAILURES.items() if isinstance(exc, kind)), None)
    if meaning is None:
        with open(path, "rb") as f:
            start = f.read(8)
        if not start.startswith(_PICKLE_STARTS):
            meaning = "the file is not a pickle or joblib file"
    return f" ({meaning})" if meaning else ""


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
