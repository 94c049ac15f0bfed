"""ONNX: ``model.onnx`` (or one other ``*.onnx`` file), run by ONNX Runtime without scikit-learn.
As ``python -m model_server.export`` writes it (``metadata.json``'s ``export`` says so), it keeps
the estimator's face (``onnx/model.py``); any other graph, a PyTorch, TensorFlow, PaddlePaddle,
XGBoost or LightGBM export, is served as the tensors it declares (``onnx/generic.py``). A graph is
data: loading it runs no code the file chooses."""

from __future__ import annotations

from pathlib import Path

from ..errors import ArtifactError
from ..metadata import ModelMetadata
from .model_file import ModelFile

FILENAMES = ("model.onnx",)
SUFFIXES = (".onnx",)


def open_model(path: Path, metadata: ModelMetadata) -> ModelFile:
    return ModelFile(path, "ONNX", metadata, lambda session=None: load(path, metadata, session), takes_session=True)


def exported(metadata: ModelMetadata) -> bool:
    """Whether the directory came from ``python -m model_server.export`` (an estimator's graph)."""
    return isinstance(metadata.export, dict) and metadata.export.get("format") == "onnx"


def load(path: Path, metadata: ModelMetadata, session=None):
    """``session``: ``onnx.generic.SessionSettings`` (None: the defaults)."""
    try:
        if exported(metadata):
            from ..onnx.model import load_onnx

            return load_onnx(path, metadata.export, session)
        from ..onnx.generic import load_generic

        return load_generic(path, session)
    except ImportError:
        needs = "serving ONNX needs ONNX Runtime: pip install onnxruntime (a default dependency)"
        raise ArtifactError(f"{path}: {needs}") from None
    except ArtifactError:
        raise
    except Exception as exc:  # ONNX Runtime's own errors say what is wrong with the graph
        raise ArtifactError(f"cannot load {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
