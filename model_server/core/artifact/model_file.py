"""``ModelFile``: what a format's module says of a model directory, before anything is loaded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..metadata import ModelMetadata


@dataclass(frozen=True)
class ModelFile:
    """The file to verify, and how to load it once it matched its pins."""

    path: Path
    format: str  # in messages and logs: "pickle", "skops", "MLflow cloudpickle"
    metadata: ModelMetadata  # metadata.json's, with what the format itself declares (an MLflow signature)
    read: Callable[..., Any]  # loads the estimator; called only after the hash check
    runs_code: bool = False  # loading it runs any code the file holds (a pickle): a pin guards it
    pins: tuple[tuple[str, str], ...] = ()  # (sha256, where it is recorded) beyond metadata.json's
    takes_session: bool = False  # read(session=...) takes ONNX Runtime's session settings (an ONNX graph)
