"""MLflow models: a directory with an ``MLmodel`` file (YAML) of the ``sklearn`` flavor.

    flavors:
      sklearn:
        pickled_model: model.pkl            # or model.skops
        serialization_format: cloudpickle   # pickle (MLflow's default), cloudpickle or skops
        skops_trusted_types: [...]          # skops: the types the model's author trusted
        code: null                          # code shipped with the model: never imported here
      python_function:
        predict_fn: predict                 # what /invocations answers: predict or predict_proba
    signature:
      inputs: '[{"type": "string", "name": "colour"}, {"type": "double", "name": "size"}]'
      params: '[{"name": "threshold", "type": "double", "default": 0.5, "shape": null}]'
    metadata:                               # MLflow's custom metadata, optional
      sha256: <hex digest of the model file>   # a pin (MLflow itself records no file hashes)

Served as it is, without importing mlflow: this module reads MLmodel, the model file is loaded as
the flavor says (``pickle_file``, ``skops_file``), and the signature's named columns become the
input features (string -> BYTES, double -> FP64, long -> INT64, ...). A tensor signature, or one
of unnamed columns, says nothing the fitted estimator does not: the schema is derived from it.
A ``metadata.json`` beside MLmodel is read as in any model directory; its ``features`` win.
The signature's ``params`` names and the pyfunc flavor's ``predict_fn`` are kept for the MLflow
scoring protocol (``core/codec/mlflow.py``): a request's ``params`` are refused unless declared
there, and ``/invocations`` answers with the method MLflow's own server would call.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from ..errors import ArtifactError
from ..metadata import METADATA_FILENAME, Feature, ModelMetadata
from . import pickle_file, skops_file
from .model_file import ModelFile

MLMODEL = "MLmodel"
SERIALIZATIONS = ("pickle", "cloudpickle", "skops")
# MLflow's column types (mlflow.types.DataType) -> V2 datatypes.
COLUMN_DATATYPES = {
    "string": "BYTES",
    "binary": "BYTES",
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
}
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def open_model(mlmodel: Path, metadata: ModelMetadata) -> ModelFile:
    document = _read(mlmodel)

    def invalid(message: str) -> ArtifactError:
        return ArtifactError(f"{mlmodel}: {message}")

    flavors = document.get("flavors")
    if not isinstance(flavors, dict) or not isinstance(flavors.get("sklearn"), dict):
        names = ", ".join(sorted(flavors)) if isinstance(flavors, dict) else "none"
        raise invalid(f"no sklearn flavor (flavors: {names}); this server serves MLflow models of the sklearn flavor")
    flavor = flavors["sklearn"]
    if flavor.get("code"):
        raise invalid(
            f"the sklearn flavor ships code ({flavor['code']}); this server never imports code from a model "
            "directory: install it as a package beside the server, and log the model without code_paths"
        )
    serialization = flavor.get("serialization_format") or "pickle"
    if serialization not in SERIALIZATIONS:
        raise invalid(f"serialization_format {serialization!r}: expected one of {', '.join(SERIALIZATIONS)}")
    path = _model_path(mlmodel, flavor.get("pickled_model"), invalid)
    if metadata.features is None:
        metadata = dataclasses.replace(metadata, features=signature_features(document.get("signature"), invalid))
    pins = _pins(document.get("metadata"), invalid)
    metadata = dataclasses.replace(
        metadata,
        params=signature_params(document.get("signature"), invalid),
        predict_fn=_predict_fn(flavors.get("python_function"), invalid),
    )
    model_format = f"MLflow {serialization}"
    if serialization == "skops":
        trusted = (*metadata.skops_trusted_types, *_trusted_types(flavor.get("skops_trusted_types"), invalid))
        where = (
            f'"{skops_file.TRUSTED_TYPES_KEY}" in {METADATA_FILENAME} '
            f"or flavors.sklearn.skops_trusted_types in {MLMODEL}"
        )
        return ModelFile(path, model_format, metadata, lambda: skops_file.load(path, trusted, where), pins=pins)
    return ModelFile(
        path, model_format, metadata, lambda: pickle_file.unpickle(path, serialization), runs_code=True, pins=pins
    )


def _read(mlmodel: Path) -> dict:
    import yaml

    try:
        document = yaml.safe_load(mlmodel.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(f"{mlmodel}: not a readable YAML file: {first_line}") from None
    if not isinstance(document, dict):
        raise ArtifactError(f"{mlmodel}: expected a YAML mapping (flavors, signature, ...)")
    return document


def _model_path(mlmodel: Path, name: object, invalid) -> Path:
    if not isinstance(name, str) or not name:
        raise invalid("flavors.sklearn.pickled_model must name the model file")
    model_dir = mlmodel.parent.resolve()
    path = (model_dir / name).resolve()
    if not path.is_relative_to(model_dir):
        raise invalid(f"flavors.sklearn.pickled_model {name!r} is outside the model directory")
    if not path.is_file():
        raise invalid(f"flavors.sklearn.pickled_model {name!r} is not there")
    return mlmodel.parent / name


def signature_features(signature: object, invalid) -> tuple[Feature, ...] | None:
    """The named columns of ``signature.inputs`` as features; None when it names none."""
    if signature is None:
        return None
    if not isinstance(signature, dict):
        raise invalid("signature must be a mapping (inputs, outputs)")
    inputs = signature.get("inputs")
    if inputs is None:
        return None
    if isinstance(inputs, str):
        try:
            inputs = json.loads(inputs)
        except ValueError as exc:
            raise invalid(f"signature.inputs is not valid JSON: {exc}") from None
    if not isinstance(inputs, list) or not all(isinstance(spec, dict) for spec in inputs):
        raise invalid("signature.inputs must be a list of column specs ({'name': ..., 'type': ...})")
    if not inputs or any(spec.get("type") == "tensor" for spec in inputs):
        return None  # a tensor signature: its width and type are the fitted estimator's
    names = [spec.get("name") for spec in inputs]
    if all(name is None for name in names):
        return None
    features = []
    for i, spec in enumerate(inputs):
        name, column_type = spec.get("name"), spec.get("type")
        if not isinstance(name, str) or not name:
            raise invalid(f"signature.inputs[{i}] has no name, while other columns have one")
        if column_type not in COLUMN_DATATYPES:
            raise invalid(
                f"signature column {name!r} is of type {column_type!r}; this server takes {', '.join(COLUMN_DATATYPES)}"
            )
        features.append(Feature(name, COLUMN_DATATYPES[column_type]))
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise invalid(f"signature.inputs: duplicate column names {duplicates}")
    return tuple(features)


def signature_params(signature: object, invalid) -> tuple[str, ...]:
    """The names of the inference params ``signature.params`` declares (MLflow's ParamSchema)."""
    params = signature.get("params") if isinstance(signature, dict) else None
    if params is None:
        return ()
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError as exc:
            raise invalid(f"signature.params is not valid JSON: {exc}") from None
    if not isinstance(params, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str) for p in params):
        raise invalid("signature.params must be a list of param specs ({'name': ..., 'type': ..., 'default': ...})")
    return tuple(p["name"] for p in params)


def _predict_fn(pyfunc_flavor: object, invalid) -> str:
    predict_fn = pyfunc_flavor.get("predict_fn", "predict") if isinstance(pyfunc_flavor, dict) else "predict"
    if not isinstance(predict_fn, str) or not predict_fn:
        raise invalid(f"flavors.python_function.predict_fn must be a method name, got {predict_fn!r}"[:200])
    return predict_fn


def _pins(custom_metadata: object, invalid) -> tuple[tuple[str, str], ...]:
    if not isinstance(custom_metadata, dict) or "sha256" not in custom_metadata:
        return ()
    pin = custom_metadata["sha256"]
    if not isinstance(pin, str) or not _SHA256.fullmatch(pin):
        raise invalid(f"metadata.sha256 must be a string of 64 hex digits, got {pin!r}"[:200])
    return ((pin.lower(), f"{MLMODEL} metadata.sha256"),)


def _trusted_types(declared: object, invalid) -> tuple[str, ...]:
    if declared is None:
        return ()
    if not isinstance(declared, list) or not all(isinstance(t, str) and t for t in declared):
        raise invalid("flavors.sklearn.skops_trusted_types must be a list of type names")
    return tuple(declared)
