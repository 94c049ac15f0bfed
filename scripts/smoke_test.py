#!/usr/bin/env python3
"""Smoke-test a running model server by URL: V1 REST, V2 REST and V2 gRPC.

The same client runs against a local server in `make test` and against a kind
cluster through `kubectl port-forward` in scripts/kind_e2e.py.

  check  V1 predict, V2 health/metadata/infer and (with --grpc) V2 gRPC infer,
         validating every answer against the demo iris model
  split  send N V2 requests and report the count per `model_version`
         (canary traffic split); --expect VERSION=PERCENT checks the share
  load   send V1 requests from several workers for a bounded time
         (drives the autoscaler)

Exit codes: 0 passed, 1 a request failed or an answer was wrong,
3 (split only) the observed share is outside --tolerance of --expect.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from collections import Counter

import httpx

# Textbook iris flowers far from the class boundaries: any sensible model
# (including the demo's second version) classifies them the same way.
IRIS_SAMPLES = [
    ([5.1, 3.5, 1.4, 0.2], 0),  # setosa
    ([5.7, 2.8, 4.1, 1.3], 1),  # versicolor
    ([7.7, 3.0, 6.1, 2.3], 2),  # virginica
]
IRIS_LABELS = ["setosa", "versicolor", "virginica"]
EXIT_FAILED = 1
EXIT_SPLIT_MISMATCH = 3


class SmokeFailure(Exception):
    """A request failed or the server's answer is wrong."""


class Client:
    """REST calls with one clear failure message per problem."""

    def __init__(self, url: str, model: str, host: str | None, timeout: float):
        self.url = url.rstrip("/")
        self.model = model
        self.http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers={"Host": host} if host else {},
        )

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise SmokeFailure(f"cannot reach {self.url}{path}: {exc!r}") from exc
        if response.status_code != 200:
            raise SmokeFailure(f"{method} {self.url}{path} returned HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError as exc:
            raise SmokeFailure(f"{method} {path} did not return JSON: {response.text[:300]}") from exc

    def v1_predict(self, rows: list[list[float]]) -> dict:
        return self.request("POST", f"/v1/models/{self.model}:predict", {"instances": rows})

    def v2_infer(self, rows: list[list[float]]) -> dict:
        return self.request("POST", f"/v2/models/{self.model}/infer", v2_request(rows))


def v2_request(rows: list[list[float]]) -> dict:
    flat = [value for row in rows for value in row]
    return {"inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": flat}]}


def class_index(prediction, labels: list[str]) -> int:
    """Map a prediction (class index or class label) to its index, or fail."""
    if isinstance(prediction, bytes):
        prediction = prediction.decode()
    if isinstance(prediction, list) and len(prediction) == 1:
        prediction = prediction[0]
    if isinstance(prediction, str) and prediction in labels:
        return labels.index(prediction)
    if (
        isinstance(prediction, (int, float))
        and not isinstance(prediction, bool)
        and float(prediction).is_integer()
        and 0 <= int(prediction) < len(labels)
    ):
        return int(prediction)
    raise SmokeFailure(f"prediction {prediction!r} is not a class index or label of {labels}")


def check_predictions(what: str, predictions: list, labels: list[str]) -> None:
    expected = [cls for _, cls in IRIS_SAMPLES]
    if len(predictions) != len(expected):
        raise SmokeFailure(f"{what}: {len(predictions)} predictions for {len(expected)} rows")
    got = [class_index(p, labels) for p in predictions]
    if got != expected:
        raise SmokeFailure(f"{what}: predicted classes {got}, expected {expected}")


def check_v2_outputs(what: str, response: dict, model: str, batch: int) -> list:
    """Validate a V2 response's outputs; return the first output's data."""
    if response.get("model_name") != model:
        raise SmokeFailure(f"{what}: model_name is {response.get('model_name')!r}, expected {model!r}")
    outputs = response.get("outputs") or []
    if not outputs:
        raise SmokeFailure(f"{what}: response has no outputs: {response}")
    for output in outputs:
        shape, data = output.get("shape") or [], output.get("data") or []
        if not shape or shape[0] != batch or math.prod(shape) != len(data):
            raise SmokeFailure(
                f"{what}: output {output.get('name')!r} has shape {shape} and {len(data)} values for a batch of {batch}"
            )
    return outputs[0]["data"]


def run_check(args: argparse.Namespace) -> None:
    client = Client(args.url, args.model, args.host, args.timeout)
    rows = [row for row, _ in IRIS_SAMPLES]
    labels = args.labels.split(",")

    def ok(message: str) -> None:
        print(f"ok    {message}")

    check_predictions("V1 predict", client.v1_predict(rows).get("predictions") or [], labels)
    ok(f"V1 predict {args.url}/v1/models/{args.model}:predict")

    client.request("GET", "/v2/health/live")
    client.request("GET", "/v2/health/ready")
    client.request("GET", f"/v2/models/{args.model}/ready")
    metadata = client.request("GET", f"/v2/models/{args.model}")
    if metadata.get("name") != args.model or not metadata.get("inputs") or not metadata.get("outputs"):
        raise SmokeFailure(f"V2 metadata lacks name/inputs/outputs: {metadata}")
    ok("V2 health, model ready and metadata")

    response = client.v2_infer(rows)
    check_predictions("V2 REST infer", check_v2_outputs("V2 REST infer", response, args.model, len(rows)), labels)
    ok(f"V2 REST infer (model_version {response.get('model_version')!r})")

    if args.grpc:
        version = check_grpc(args.grpc, args.model, rows, labels, args.timeout)
        ok(f"V2 gRPC infer {args.grpc} (model_version {version!r})")
    print(f"smoke test passed against {args.url}" + (f" and {args.grpc}" if args.grpc else ""))


def check_grpc(target: str, model: str, rows: list[list[float]], labels: list[str], timeout: float) -> str:
    # Imported here so REST-only runs do not need the gRPC client.
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(target)
    try:
        if not client.is_server_live(client_timeout=timeout):
            raise SmokeFailure(f"gRPC {target}: server is not live")
        if not client.is_model_ready(model, client_timeout=timeout):
            raise SmokeFailure(f"gRPC {target}: model {model!r} is not ready")
        tensor = grpcclient.InferInput("input-0", [len(rows), len(rows[0])], "FP64")
        tensor.set_data_from_numpy(np.asarray(rows, dtype=np.float64))
        result = client.infer(model, [tensor], client_timeout=timeout)
    except InferenceServerException as exc:
        raise SmokeFailure(f"gRPC {target}: {exc}") from exc
    finally:
        client.close()
    response = result.get_response()
    if response.model_name != model:
        raise SmokeFailure(f"gRPC infer: model_name is {response.model_name!r}, expected {model!r}")
    if not response.outputs:
        raise SmokeFailure("gRPC infer: response has no outputs")
    for output in response.outputs:
        shape = list(output.shape)
        values = result.as_numpy(output.name)
        if not shape or shape[0] != len(rows) or values is None or list(values.shape) != shape:
            raise SmokeFailure(f"gRPC infer: output {output.name!r} has shape {shape} for a batch of {len(rows)}")
    predictions = result.as_numpy(response.outputs[0].name).reshape(len(rows), -1)[:, 0].tolist()
    check_predictions("V2 gRPC infer", predictions, labels)
    return response.model_version


def run_split(args: argparse.Namespace) -> int:
    client = Client(args.url, args.model, args.host, args.timeout)
    labels = args.labels.split(",")
    rows = [IRIS_SAMPLES[0][0]]
    versions: Counter[str] = Counter()
    for _ in range(args.requests):
        response = client.v2_infer(rows)
        for prediction in check_v2_outputs("V2 REST infer", response, args.model, len(rows)):
            class_index(prediction, labels)
        versions[str(response.get("model_version"))] += 1
    for version, count in sorted(versions.items()):
        print(f"model_version {version}: {count}/{args.requests} ({100 * count / args.requests:.1f}%)")
    if args.expect is None:
        return 0
    version, percent = args.expect
    observed = 100 * versions[version] / args.requests
    if abs(observed - percent) > args.tolerance:
        print(
            f"split mismatch: model_version {version} got {observed:.1f}% of requests, "
            f"expected {percent:g}% ± {args.tolerance:g}",
            file=sys.stderr,
        )
        return EXIT_SPLIT_MISMATCH
    print(f"split ok: model_version {version} got {observed:.1f}% (expected {percent:g}% ± {args.tolerance:g})")
    return 0


def run_load(args: argparse.Namespace) -> None:
    rows = [row for row, _ in IRIS_SAMPLES]
    deadline = time.monotonic() + args.seconds
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def worker() -> None:
        client = Client(args.url, args.model, args.host, args.timeout)
        while time.monotonic() < deadline:
            try:
                client.v1_predict(rows)
                outcome = "ok"
            except SmokeFailure:
                outcome = "failed"
            with lock:
                counts[outcome] += 1

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(
        f"load: {counts['ok']} requests ok, {counts['failed']} failed in {args.seconds:g}s "
        f"with {args.concurrency} workers"
    )
    if counts["ok"] == 0:
        raise SmokeFailure(f"load: no request to {args.url} succeeded")


def version_percent(text: str) -> tuple[str, float]:
    version, sep, percent = text.partition("=")
    try:
        if not sep or not version:
            raise ValueError
        return version, float(percent)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VERSION=PERCENT, got {text!r}") from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", required=True, help="REST base URL, e.g. http://127.0.0.1:8080")
    common.add_argument("--model", default="iris", help="model name (default: iris)")
    common.add_argument("--host", help="Host header to send (to reach a model through an ingress gateway)")
    common.add_argument("--labels", default=",".join(IRIS_LABELS), help="comma-separated class labels")
    common.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds")

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", parents=[common], help="V1, V2 REST and V2 gRPC checks")
    check.add_argument("--grpc", metavar="HOST:PORT", help="also check V2 gRPC at this target")
    split = commands.add_parser("split", parents=[common], help="count V2 responses per model_version")
    split.add_argument("--requests", type=int, default=200, help="number of requests (default: 200)")
    split.add_argument(
        "--expect",
        type=version_percent,
        metavar="VERSION=PERCENT",
        help="expected share of one model_version, e.g. 2=20",
    )
    split.add_argument(
        "--tolerance",
        type=float,
        default=10.0,
        help="allowed deviation from --expect in percentage points (default: 10)",
    )
    load = commands.add_parser("load", parents=[common], help="send V1 requests for a bounded time")
    load.add_argument("--seconds", type=float, default=60.0, help="how long to send (default: 60)")
    load.add_argument("--concurrency", type=int, default=8, help="parallel workers (default: 8)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "check":
            run_check(args)
        elif args.command == "split":
            return run_split(args)
        else:
            run_load(args)
    except SmokeFailure as exc:
        print(f"smoke test FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
