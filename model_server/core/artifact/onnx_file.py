"""ONNX: ``model.onnx`` (or one other ``*.onnx`` file), as ``python -m model_server.export``
writes it, run by ONNX Runtime without scikit-learn (``onnx_model.py``). A graph is data: loading
it runs no code the file chooses."""

from __future__ import annotations

from pathlib import Path

from ..errors import ArtifactError
from ..metadata import ModelMetadata
from .model_file import ModelFile

FILENAMES = ("model.onnx",)
SUFFIXES = (".onnx",)


def open_model(path: Path, metadata: ModelMetadata) -> ModelFile:
    return ModelFile(path, "ONNX", metadata, lambda: load(path, metadata))


def load(path: Path, metadata: ModelMetadata):
    from ..onnx.model import load_onnx

    try:
        return load_onnx(path, metadata.export)
    except ImportError:
        needs = "serving ONNX needs ONNX Runtime: pip install onnxruntime (a default dependency)"
        raise ArtifactError(f"{path}: {needs}") from None
    except Exception as exc:  # ONNX Runtime's own errors say what is wrong with the graph
        raise ArtifactError(f"cannot load {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
