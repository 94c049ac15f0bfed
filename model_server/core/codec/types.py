"""What every wire format decodes to and encodes from: requests of rows (V1) or of named tensors
(V2), and the model's outputs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidInput

JSON_CONTENT = {"content-type": "application/json"}


@dataclass
class Tensor:
    name: str
    datatype: str
    data: np.ndarray  # already in the declared shape


# Output names: what a model can answer (the predictor says which of them a model has).
PREDICT, PROBA, LABEL = "predict", "predict_proba", "label"


# V1 asks for outputs beyond "predictions" by parameter, and answers them under the same key.
V1_OUTPUT_PARAMETERS = {"probabilities": PROBA, "labels": LABEL}


@dataclass
class V1Request:
    instances: object  # the rows, checked by the schema
    outputs: list[str]  # PREDICT, then those the parameters ask for
    columnar: bool = False  # {"inputs": {name: whole tensor}} rather than rows (a generic ONNX graph)

    def unknown_outputs(self, unknown: list[str], estimator: str, available: list[str]) -> InvalidInput:
        parameters = [p for p, output in V1_OUTPUT_PARAMETERS.items() if output in unknown]
        return InvalidInput(f'parameter "{parameters[0]}" is not available for {estimator}')


@dataclass
class V2Request:
    id: str | None
    inputs: list[Tensor]
    outputs: list[str] | None = None  # requested output names, None = the defaults
    binary_outputs: set[str] = field(default_factory=set)

    def unknown_outputs(self, unknown: list[str], estimator: str, available: list[str]) -> InvalidInput:
        return InvalidInput(f"unknown outputs {unknown}; this model has {available}")


@dataclass
class Output:
    name: str
    datatype: str
    data: np.ndarray


@dataclass
class InferenceResponse:
    model_name: str
    model_version: str
    outputs: list[Output]
