"""One tritonclient.grpc inference (over TLS or not, with headers), printed as JSON.

Runs in its own process: tritonclient.grpc and kserve register the same protobuf symbols, so the
two cannot be imported into one process (see tritonclient_grpc_calls.py).
Usage: python tritonclient_tls_calls.py '{"target": "localhost:PORT", "ssl": true,
  "root_certificates": CA, "private_key": KEY, "certificate_chain": CERT, "headers": {...}}'
Prints {"predict": [...]} or {"error": "StatusCode.UNAVAILABLE: ..."}.
"""

import json
import sys

import numpy as np
import tritonclient.grpc as tritongrpc
from tritonclient.utils import InferenceServerException


def main() -> None:
    options = json.loads(sys.argv[1])
    headers = options.pop("headers", None) or None
    target = options.pop("target")
    client = tritongrpc.InferenceServerClient(target, **options)
    tensor = tritongrpc.InferInput("x", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]]))
    try:
        result = client.infer("iris", [tensor], headers=headers, client_timeout=10)
        print(json.dumps({"predict": result.as_numpy("predict").tolist()}))
    except InferenceServerException as exc:
        print(json.dumps({"error": f"{exc.status()}: {exc.message()}"}))


if __name__ == "__main__":
    main()
