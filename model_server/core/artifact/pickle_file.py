"""Pickles: ``model.joblib``, ``model.pkl``, ``model.pickle`` (the names KServe's sklearnserver
accepts), or one other file of those suffixes.

Unpickling runs whatever code the file holds (any ``__reduce__``), so a pickle is a
``ModelFile`` that ``runs_code``: the loader checks its pin before this module reads a byte.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ArtifactError
from ..metadata import ModelMetadata
from .model_file import ModelFile

FILENAMES = ("model.joblib", "model.pkl", "model.pickle")
SUFFIXES = (".joblib", ".pkl", ".pickle")
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


def open_model(path: Path, metadata: ModelMetadata) -> ModelFile:
    return ModelFile(path, "pickle", metadata, lambda: unpickle(path), runs_code=True)


def unpickle(path: Path, serialization: str = "joblib"):
    """``joblib``: joblib.load (plain and joblib pickles); ``pickle``, ``cloudpickle``: what
    MLflow saved with them."""
    try:
        if serialization == "joblib":
            import joblib

            return joblib.load(path)
        with open(path, "rb") as f:
            if serialization == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(f)
            import pickle

            return pickle.load(f)
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
