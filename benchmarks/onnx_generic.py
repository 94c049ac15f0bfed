"""Generic ONNX graphs through the server, next to the same graph run by ONNX Runtime in a plain loop.

Part of ``make bench``. Two real exports (``tests/support/onnx_exports.py``): an image-style
model (PaddlePaddle's text-direction classifier, a 4-D float input ``[8, 3, 48, 192]``) and a
tree ensemble (XGBoost via onnxmltools, ``[8, 6]``), 8 rows per request.

- **bare session**: ``onnxruntime.InferenceSession.run`` on the same feeds in a loop, in one
  process, with the server's session settings (1 intra-op and 1 inter-op thread, all graph
  optimizations): what this model costs on this machine, with nothing around it;
- **server**: ``python -m model_server`` serving both from a --model_repository, loaded by 16
  concurrent clients: V2 REST with the binary tensor extension (wrk) and V2 gRPC (h2load).
  One response of each is checked against the bare session first.

Target: the server's req/s at batch 8 >= 0.8 of the bare session's. The per-request overhead is
1/server req/s - 1/bare req/s, in microseconds (negative where batching concurrent requests
into one run does better than the loop of single calls). Triton is not available here (no
8-16 GB image can be fetched), so the bare session is the anchor. Output:
``benchmarks/results/onnx_generic.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import loadgen
from benchmarks.servers import REPO_ROOT, free_port
from benchmarks.workloads import GRPC_INFER_PATH, grpc_frame

RESULTS = REPO_ROOT / "benchmarks" / "results"
ROWS = 8
TARGET = 0.8
MODELS = ("paddle_image", "xgboost")


def bare_session(path: Path, feeds: dict, seconds: float) -> dict:
    import onnxruntime

    from model_server.core.onnx.generic import SessionSettings

    session = onnxruntime.InferenceSession(
        str(path), SessionSettings().session_options(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    for _ in range(20):
        session.run(names, feeds)
    latencies, end = [], time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        session.run(names, feeds)
        latencies.append(time.perf_counter() - now)
    total = sum(latencies)
    return {
        "req_per_s": len(latencies) / total,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "requests": len(latencies),
    }


def binary_body(feeds: dict, outputs: list[str]) -> tuple[bytes, int]:
    from model_server.core.codec import datatype_of, tensor_to_bytes

    chunks, specs = [], []
    for name, array in feeds.items():
        raw = tensor_to_bytes(datatype_of(array), array)
        specs.append(
            {
                "name": name,
                "datatype": datatype_of(array),
                "shape": list(array.shape),
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        chunks.append(raw)
    header = json.dumps(
        {"inputs": specs, "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in outputs]}
    ).encode()
    return header + b"".join(chunks), len(header)


def grpc_message(model: str, feeds: dict) -> bytes:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    from model_server.core.codec import datatype_of, tensor_to_bytes

    return pb.ModelInferRequest(
        model_name=model,
        inputs=[
            pb.ModelInferRequest.InferInputTensor(name=n, datatype=datatype_of(a), shape=list(a.shape))
            for n, a in feeds.items()
        ],
        raw_input_contents=[tensor_to_bytes(datatype_of(a), a) for a in feeds.values()],
    ).SerializeToString()


def check(http_url: str, grpc_target: str, model: str, feeds: dict, expected: dict) -> int:
    """One binary REST and one gRPC response equal to the bare session's; the gRPC frame size."""
    import grpc
    import httpx
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    body, header_length = binary_body(feeds, list(expected))
    response = httpx.post(
        f"{http_url}/v2/models/{model}/infer",
        content=body,
        headers={"inference-header-content-length": str(header_length), "content-type": "application/octet-stream"},
        timeout=30,
    )
    response.raise_for_status()
    with grpc.insecure_channel(grpc_target) as channel:
        raw = channel.unary_unary(GRPC_INFER_PATH)(grpc_message(model, feeds), timeout=30)
    answer = pb.ModelInferResponse.FromString(raw)
    for spec, contents in zip(answer.outputs, answer.raw_output_contents, strict=True):
        want = expected[spec.name]
        got = np.frombuffer(contents, dtype=want.dtype.newbyteorder("<")).reshape(list(spec.shape))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{model} {spec.name}")
    return len(grpc_frame(raw))


def run(args) -> dict:
    from model_server.core.codec import datatype_of  # noqa: F401  (fails early without the package)
    from tests.support.onnx_exports import exports, model_directory

    found, missing = exports()
    chosen = [e for e in found if e.name in MODELS]
    root = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    for export in chosen:
        model_directory(export, root / export.name)
    http_port, grpc_port = free_port(), free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115  (open for the server's whole life)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "model_server",
            f"--model_repository={root}",
            f"--http_port={http_port}",
            f"--grpc_port={grpc_port}",
            "--onnx_warmup",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
    )
    http_url, grpc_target = f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    results = {"rows": ROWS, "target": TARGET, "missing": missing, "models": {}}
    try:
        _wait_ready(http_url, server, root / "server.log")
        for export in chosen:
            feeds = export.inputs(ROWS, np.random.default_rng(0))
            import onnxruntime

            session = onnxruntime.InferenceSession(str(export.onnx), providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()]
            expected = dict(zip(names, session.run(names, feeds), strict=True))
            frame_bytes = check(http_url, grpc_target, export.name, feeds, expected)
            bare = bare_session(export.onnx, feeds, args.duration)
            body, header_length = binary_body(feeds, names)
            url = f"{http_url}/v2/models/{export.name}/infer"
            frame = grpc_frame(grpc_message(export.name, feeds))
            runs = {}
            for protocol, load in (
                ("v2-binary", lambda s, url=url, body=body, n=header_length: loadgen.run_wrk(url, body, s, None, n)),
                (
                    "v2-grpc",
                    lambda s, frame=frame, n=frame_bytes: loadgen.run_h2load(
                        f"http://{grpc_target}{GRPC_INFER_PATH}", frame, n, s
                    ),
                ),
            ):
                if args.warmup:
                    load(args.warmup)
                result = load(args.duration)
                ratio = result.req_per_s / bare["req_per_s"]
                runs[protocol] = {
                    **result.to_json(),
                    "ratio_to_bare": ratio,
                    "overhead_us": 1e6 / result.req_per_s - 1e6 / bare["req_per_s"],
                    "target_met": bool(result.valid and ratio >= TARGET),
                }
            results["models"][export.name] = {"framework": export.framework, "bare": bare, "server": runs}
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    return results


def _wait_ready(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready:\n{log.read_text()[-3000:]}")


def table(results: dict) -> str:
    lines = [
        f"Generic ONNX at batch {results['rows']}: this server (16 concurrent clients) vs the bare ONNX Runtime "
        "session in a loop, same session settings (1 intra-op, 1 inter-op thread). Triton: not available here.",
        "",
        "| model | framework | path | req/s | p50 ms | p99 ms | vs bare | overhead us/request | target >= 0.8 |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, model in results["models"].items():
        bare = model["bare"]
        lines.append(
            f"| {name} | {model['framework']} | bare session | {bare['req_per_s']:,.0f} | {bare['p50_ms']:.2f} | "
            f"{bare['p99_ms']:.2f} |  |  |  |"
        )
        for protocol, run in model["server"].items():
            invalid = f"INVALID: {run['invalid_reason']}"
            met = "met" if run["target_met"] else ("NOT met" if run["valid"] else invalid)
            lines.append(
                f"| {name} | {model['framework']} | server {protocol} | {run['req_per_s']:,.0f} | "
                f"{run['p50_ms']:.2f} | {run['p99_ms']:.2f} | {run['ratio_to_bare']:.2f}x | "
                f"{run['overhead_us']:+.0f} | {met} |"
            )
    for reason in results["missing"]:
        lines.append(f"\nSkipped: {reason}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.onnx_generic", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s runs, no warm-up")
    parser.add_argument("--duration", type=int, default=5, help="seconds of each measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 1, 0
    missing = loadgen.missing_tools()
    if missing:
        sys.exit(f"missing load generators: {', '.join(missing)}")
    results = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "onnx_generic.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (args.out / "onnx_generic.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
