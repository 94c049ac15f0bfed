"""KServe's V1 protocol: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out."""

from __future__ import annotations

import orjson

from ..errors import InvalidInput
from .types import JSON_CONTENT, PREDICT, V1_OUTPUT_PARAMETERS, InferenceResponse, V1Request


def decode_v1(doc: object) -> V1Request:
    """A V1 ``{"instances": [...], "parameters": {...}}`` body, already parsed from JSON."""
    if not isinstance(doc, dict):
        raise InvalidInput('expected a JSON object like {"instances": [[...], ...]}')
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput('"parameters" must be an object')
    outputs = [PREDICT] + [output for parameter, output in V1_OUTPUT_PARAMETERS.items() if parameters.get(parameter)]
    if "instances" not in doc and isinstance(doc.get("inputs"), dict):
        # TF Serving's columnar form, {"inputs": {"a": [...], "b": [...]}}: whole tensors by name
        # (a generic ONNX graph takes it; an estimator says it wants instances).
        return V1Request(doc["inputs"], outputs, columnar=True)
    if "instances" not in doc:
        hint = ' (this is the V1 endpoint; V2 "inputs" go to /v2/models/{name}/infer)' if "inputs" in doc else ""
        raise InvalidInput(f'missing "instances"{hint}')
    return V1Request(doc["instances"], outputs)


def v1_response(response: InferenceResponse) -> dict:
    """``{"predictions": [...]}``, plus ``probabilities`` / ``labels`` when they were asked for."""
    by_name = {output.name: output.data for output in response.outputs}
    body = {"predictions": by_name[PREDICT].tolist()}
    for parameter, output in V1_OUTPUT_PARAMETERS.items():
        if output in by_name:
            body[parameter] = by_name[output].tolist()
    return body


def encode_v1(request: V1Request, response: InferenceResponse) -> tuple[bytes, dict[str, str]]:
    return orjson.dumps(v1_response(response)), JSON_CONTENT
