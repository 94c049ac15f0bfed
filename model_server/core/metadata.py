"""``metadata.json``: read and validated here, in one place, into a ``ModelMetadata``.

    {
      "version": "1",                                          # reported as model_version
      "features": [{"name": "sepal_length", "datatype": "FP64"}, ...],
      "class_labels": ["setosa", "versicolor", "virginica"],   # one per estimator.classes_
      "sha256": "<hex digest of the model file>",              # verified before unpickling
      "documents": true,                                       # takes a 1-D sequence of strings
      "export": {...},                                         # written by python -m model_server.export
      "skops_trusted_types": ["sklearn.tree._tree.Tree"],      # model.skops: types trusted beyond skops'
      "profile_sha256": "<hex digest of profile.json>",        # written by python -m model_server.profile
      "name": "resnet18",                                      # a generic ONNX graph: what it is (logged)
      "inputs": {"x": {"description": "..."}},                 # per-input and per-output descriptions,
      "outputs": {"probs": {"description": "..."}},            # in V2 metadata's tensor parameters
      "probabilities": "probs"                                 # the output class_labels label
    }

Every key is optional; what is missing is derived from the estimator. Any wrong key or value is
an ``ArtifactError`` naming the file and the key: a typo must not be silently ignored, and an
empty or malformed ``sha256`` is an error, never "not pinned".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ArtifactError

METADATA_FILENAME = "metadata.json"
METADATA_KEYS = (
    "version",
    "features",
    "class_labels",
    "sha256",
    "documents",
    "export",
    "skops_trusted_types",
    "profile_sha256",
    "name",
    "inputs",
    "outputs",
    "probabilities",
)
TENSOR_DESCRIPTION_KEYS = ("description",)
FEATURE_KEYS = ("name", "datatype")
NUMERIC_DATATYPES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
)
FEATURE_DATATYPES = (*NUMERIC_DATATYPES, "BYTES")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class Feature:
    name: str
    datatype: str = "FP64"

    @property
    def numeric(self) -> bool:
        return self.datatype != "BYTES"


@dataclass(frozen=True)
class ModelMetadata:
    version: str = "1"
    features: tuple[Feature, ...] | None = None
    class_labels: tuple[str, ...] | None = None
    sha256: str | None = None  # lower case
    documents: bool | None = None  # None: derived from the estimator (estimator_inputs.takes_documents)
    export: dict | None = None  # what `python -m model_server.export` wrote: classes, parity, sources
    skops_trusted_types: tuple[str, ...] = ()  # constructed from a skops file beyond skops' own trusted set
    profile_sha256: str | None = None  # of profile.json (python -m model_server.profile), lower case
    name: str | None = None  # what the model is (a generic ONNX graph's log line)
    inputs: dict[str, str] | None = None  # tensor name -> description (a generic ONNX graph)
    outputs: dict[str, str] | None = None
    probabilities: str | None = None  # the graph output that class_labels label
    # Not metadata.json keys: what an MLflow model's MLmodel declares (artifact/mlflow_model.py).
    params: tuple[str, ...] = ()  # the inference params its signature declares (MLflow's "params")
    predict_fn: str = "predict"  # the method its pyfunc flavor answers /invocations with


def read_metadata(model_dir: Path) -> ModelMetadata:
    path = Path(model_dir) / METADATA_FILENAME
    if not path.is_file():
        return ModelMetadata()
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError(f"{path}: not valid JSON: {exc}") from None
    return parse_metadata(document, path)


def parse_metadata(document: object, path: Path | str = METADATA_FILENAME) -> ModelMetadata:
    def invalid(message: str) -> ArtifactError:
        return ArtifactError(f"{path}: {message}")

    if not isinstance(document, dict):
        raise invalid("expected a JSON object")
    unknown = sorted(set(document) - set(METADATA_KEYS))
    if unknown:
        raise invalid(f"unknown keys {unknown}; allowed: {sorted(METADATA_KEYS)}")
    version = document.get("version", "1")
    if isinstance(version, bool) or not isinstance(version, (str, int)) or str(version) == "":
        raise invalid("version must be a non-empty string (or an integer)")
    sha256 = document.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise invalid(f"sha256 must be a string of 64 hex digits, got {sha256!r}"[:200])
    profile_sha256 = document.get("profile_sha256")
    if profile_sha256 is not None and not (isinstance(profile_sha256, str) and _SHA256.fullmatch(profile_sha256)):
        raise invalid(f"profile_sha256 must be a string of 64 hex digits, got {profile_sha256!r}"[:200])
    documents = document.get("documents")
    if documents is not None and not isinstance(documents, bool):
        raise invalid(f"documents must be true or false, got {documents!r}"[:200])
    export = document.get("export")
    if export is not None and not isinstance(export, dict):
        raise invalid("export must be an object (what python -m model_server.export writes)")
    for key in ("name", "probabilities"):
        value = document.get(key)
        if value is not None and not (isinstance(value, str) and value):
            raise invalid(f"{key} must be a non-empty string, got {value!r}"[:200])
    return ModelMetadata(
        name=document.get("name"),
        probabilities=document.get("probabilities"),
        inputs=_descriptions(document.get("inputs"), "inputs", invalid),
        outputs=_descriptions(document.get("outputs"), "outputs", invalid),
        version=str(version),
        documents=documents,
        export=export,
        features=_features(document.get("features"), invalid),
        class_labels=_class_labels(document.get("class_labels"), invalid),
        sha256=sha256.lower() if sha256 else None,
        skops_trusted_types=_type_names(document.get("skops_trusted_types"), invalid),
        profile_sha256=profile_sha256.lower() if profile_sha256 else None,
    )


def _features(declared: object, invalid) -> tuple[Feature, ...] | None:
    if declared is None:
        return None
    if not isinstance(declared, list) or not declared:
        raise invalid("features must be a non-empty list of {'name': ..., 'datatype': ...} objects")
    features = []
    for i, item in enumerate(declared):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise invalid(f"features[{i}] must be an object with a non-empty string 'name'")
        unknown = sorted(set(item) - set(FEATURE_KEYS))
        if unknown:
            raise invalid(f"features[{i}]: unknown keys {unknown}; allowed: {list(FEATURE_KEYS)}")
        datatype = item.get("datatype", "FP64")
        if not isinstance(datatype, str) or datatype.upper() not in FEATURE_DATATYPES:
            raise invalid(
                f"features[{i}]: unknown datatype {datatype!r}; expected one of {', '.join(FEATURE_DATATYPES)}"
            )
        features.append(Feature(item["name"], datatype.upper()))
    names = [f.name for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise invalid(f"features: duplicate names {duplicates}")
    return tuple(features)


def _descriptions(declared: object, key: str, invalid) -> dict[str, str] | None:
    if declared is None:
        return None
    if not isinstance(declared, dict):
        raise invalid(f'{key} must be an object like {{"<tensor name>": {{"description": "..."}}}}')
    descriptions = {}
    for name, item in declared.items():
        if not isinstance(item, dict) or not isinstance(item.get("description", ""), str):
            raise invalid(f'{key}["{name}"] must be an object with a string "description"')
        unknown = sorted(set(item) - set(TENSOR_DESCRIPTION_KEYS))
        if unknown:
            raise invalid(f'{key}["{name}"]: unknown keys {unknown}; allowed: {list(TENSOR_DESCRIPTION_KEYS)}')
        descriptions[name] = item.get("description", "")
    return descriptions


def _type_names(declared: object, invalid) -> tuple[str, ...]:
    if declared is None:
        return ()
    if not isinstance(declared, list) or not all(isinstance(name, str) and name.strip() for name in declared):
        raise invalid("skops_trusted_types must be a list of type names, as skops.io.get_untrusted_types lists them")
    return tuple(declared)


def _class_labels(declared: object, invalid) -> tuple[str, ...] | None:
    if declared is None:
        return None
    if not isinstance(declared, list) or not all(isinstance(label, (str, int)) for label in declared):
        raise invalid("class_labels must be a list of strings, one per class of the estimator")
    return tuple(str(label) for label in declared)
