"""Calls the server with tritonclient.grpc and prints what came back as JSON.

Runs in its own process: tritonclient.grpc and kserve register the same protobuf symbols
("inference.ServerLiveRequest", ...), so the two cannot be imported into one process.
Usage: python tritonclient_grpc_calls.py HOST:PORT MODEL
"""

import json
import sys

import numpy as np
import tritonclient.grpc as tritongrpc
from tritonclient.utils import InferenceServerException

ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])


def infer(client, model, data, datatype, outputs=()):
    tensor = tritongrpc.InferInput("input-0", list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    try:
        result = client.infer(
            model, [tensor], outputs=[tritongrpc.InferRequestedOutput(n) for n in outputs], request_id="r1"
        )
    except InferenceServerException as exc:
        return {"status": str(exc.status()), "message": exc.message()}
    response = result.get_response()
    return {
        "status": "OK",
        "id": response.id,
        "model_version": response.model_version,
        "outputs": {o.name: np.asarray(result.as_numpy(o.name)).tolist() for o in response.outputs},
    }


def main(target: str, model: str) -> None:
    client = tritongrpc.InferenceServerClient(target)
    report = {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "model_ready": client.is_model_ready(model),
        "metadata": client.get_model_metadata(model, as_json=True),
        "fp32": infer(client, model, ROWS.astype(np.float32), "FP32", ("predict", "label", "predict_proba")),
        "fp64_default_outputs": infer(client, model, ROWS, "FP64"),
        "too_few_features": infer(client, model, np.zeros((2, 3)), "FP64"),
        "bytes_for_numeric": infer(client, model, np.array([[b"a"] * 4], dtype=object), "BYTES"),
        "nan": infer(client, model, np.array([[np.nan, 1, 1, 1]]), "FP64"),
        "unknown_model": infer(client, "no-such-model", ROWS, "FP64"),
        "after_errors": infer(client, model, ROWS[:1], "FP64"),
    }
    print(json.dumps(report, default=lambda v: v.decode() if isinstance(v, bytes) else str(v)))


if __name__ == "__main__":
    main(*sys.argv[1:3])
