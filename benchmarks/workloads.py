"""The models and request bodies every server is measured with, and the check
that a server's answer is actually correct."""

import json
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

V1_REST = "v1-rest"
V2_REST = "v2-rest"
V2_GRPC = "v2-grpc"
PROTOCOLS = (V2_REST, V1_REST, V2_GRPC)

GRPC_INFER_PATH = "/inference.GRPCInferenceService/ModelInfer"
SEED = 0
RF_FEATURES = 20
RF_TREES = 100


@dataclass
class BenchModel:
    name: str
    model_dir: Path
    estimator: object
    sample_rows: np.ndarray  # real rows to build requests from

    def rows(self, count: int) -> np.ndarray:
        """The first `count` sample rows (deterministic, mixed classes)."""
        return self.sample_rows[:count]


def build_iris(root: Path) -> BenchModel:
    """Iris logistic regression, written by the project's own demo command."""
    from sklearn.datasets import load_iris

    model_dir = root / "iris"
    subprocess.run([sys.executable, "-m", "model_server.demo", str(model_dir)], check=True, capture_output=True)
    features = load_iris().data
    shuffled = features[np.random.default_rng(SEED).permutation(len(features))]
    return BenchModel("iris", model_dir, joblib.load(model_dir / "model.joblib"), shuffled)


def build_rf100(root: Path) -> BenchModel:
    """100-tree random forest on 20 synthetic features, fixed seed."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    model_dir = root / "rf100"
    model_dir.mkdir(parents=True, exist_ok=True)
    features, labels = make_classification(
        n_samples=2000, n_features=RF_FEATURES, n_informative=10, n_classes=3, random_state=SEED
    )
    forest = RandomForestClassifier(n_estimators=RF_TREES, random_state=SEED).fit(features, labels)
    joblib.dump(forest, model_dir / "model.joblib")
    return BenchModel("rf100", model_dir, forest, features)


MODEL_BUILDERS = {"iris": build_iris, "rf100": build_rf100}


# --- request bodies -------------------------------------------------------


def v1_body(rows: np.ndarray) -> bytes:
    return json.dumps({"instances": rows.tolist()}).encode()


def v2_body(rows: np.ndarray) -> bytes:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}
    return json.dumps({"inputs": [tensor]}).encode()


def grpc_request(model_name: str, rows: np.ndarray) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0",
        datatype="FP64",
        shape=list(rows.shape),
        contents=pb.InferTensorContents(fp64_contents=rows.ravel().tolist()),
    )
    return pb.ModelInferRequest(model_name=model_name, inputs=[tensor])


def grpc_frame(message_bytes: bytes) -> bytes:
    """A gRPC length-prefixed message (uncompressed), as it travels in HTTP/2 DATA."""
    return b"\x00" + struct.pack(">I", len(message_bytes)) + message_bytes


def rest_path(protocol: str, model_name: str) -> str:
    if protocol == V1_REST:
        return f"/v1/models/{model_name}:predict"
    return f"/v2/models/{model_name}/infer"


def request_body(protocol: str, model_name: str, rows: np.ndarray) -> bytes:
    if protocol == V1_REST:
        return v1_body(rows)
    if protocol == V2_REST:
        return v2_body(rows)
    return grpc_frame(grpc_request(model_name, rows).SerializeToString())


# --- response checks ------------------------------------------------------

_GRPC_CONTENT_FIELDS = {
    "INT64": "int64_contents",
    "INT32": "int_contents",
    "FP64": "fp64_contents",
    "FP32": "fp32_contents",
    "BYTES": "bytes_contents",
    "BOOL": "bool_contents",
}
_RAW_DTYPES = {"INT64": "<i8", "INT32": "<i4", "FP64": "<f8", "FP32": "<f4"}


def grpc_output_values(response: pb.ModelInferResponse) -> list:
    """First output of a ModelInferResponse, whether sent typed or as raw bytes."""
    output = response.outputs[0]
    if response.raw_output_contents:
        return np.frombuffer(response.raw_output_contents[0], dtype=_RAW_DTYPES[output.datatype]).tolist()
    return list(getattr(output.contents, _GRPC_CONTENT_FIELDS[output.datatype]))


def predictions_in(protocol: str, response) -> list:
    """The prediction values a server returned (response is parsed JSON or a protobuf)."""
    if protocol == V1_REST:
        return list(np.ravel(response["predictions"]))
    if protocol == V2_REST:
        return list(np.ravel(response["outputs"][0]["data"]))
    return grpc_output_values(response)


def check_predictions(model: BenchModel, rows: np.ndarray, got: list) -> str | None:
    """None when `got` matches the estimator's own predict(); otherwise why not."""
    expected = model.estimator.predict(rows).tolist()
    if [_plain(v) for v in got] == [_plain(v) for v in expected]:
        return None
    return f"wrong predictions: expected {expected[:8]}, got {got[:8]}"


def _plain(value):
    # Servers may send class ids as ints, floats or strings; compare the values.
    if isinstance(value, bytes):
        value = value.decode()
    try:
        return float(value)
    except (TypeError, ValueError):
        return value
