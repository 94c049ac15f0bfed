"""MLflow's scoring protocol: our ``POST /invocations`` next to ``mlflow models serve`` and our own V2 REST.

    python -m benchmarks.mlflow_invocations            # in make bench
    python -m benchmarks.mlflow_invocations --quick    # 1 s runs, 1 round

Models: the iris logistic regression and the 100-tree random forest of ``benchmarks.workloads``.
MLflow's server (``mlflow models serve --env-manager local``, one worker, its default) serves the
same fitted estimator saved by ``mlflow.sklearn.save_model`` with a signature of the same column
names, installed into its own venv (``benchmarks/mlflow_env.py``). Every request is one row as
JSON ``dataframe_split`` (what MLflow's client sends for a DataFrame), posted by wrk -t1 -c16; our
server is also measured on V2 REST (one [1, F] tensor) in the same launch. Rounds alternate the
two servers; the table shows the median of rounds; one response of each is checked against the
estimator's own ``predict()`` first, and a run with any failed response is INVALID.

Targets: /invocations >= 10x MLflow's req/s, p99 <= 1/5 of MLflow's, and >= 0.8x our own V2 REST
req/s on the same model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks import loadgen, report
from benchmarks.mlflow_env import MLFLOW_VERSION, ensure_mlflow
from benchmarks.run import provenance
from benchmarks.servers import REPO_ROOT, RunningServer, ServerKind, this_server
from benchmarks.workloads import MODEL_BUILDERS, BenchModel, check_predictions, v2_body

SECTION = "mlflow invocations results"
MIN_VS_MLFLOW, MAX_P99_VS_MLFLOW, MIN_VS_V2 = 10.0, 1 / 5, 0.8
# Writes an MLflow model of a joblib file, with a signature naming the columns, in MLflow's venv
# (cloudpickle: MLflow 3's default, skops, refuses a forest's tree type unless told to trust it).
SAVE_SCRIPT = """
import json, sys, joblib, pandas as pd, mlflow.sklearn
from mlflow.models import infer_signature
source, target, columns = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
model = joblib.load(source)
frame = pd.DataFrame([[0.0] * len(columns)], columns=columns)
mlflow.sklearn.save_model(model, target, signature=infer_signature(frame, model.predict(frame.to_numpy())),
                          serialization_format="cloudpickle", pip_requirements=["scikit-learn"])
"""


def column_names(model: BenchModel) -> list[str]:
    """The feature names our server knows (metadata.json), else f0, f1, ... (a nameless model: positional)."""
    metadata = model.model_dir / "metadata.json"
    if metadata.is_file():
        return [feature["name"] for feature in json.loads(metadata.read_text())["features"]]
    return [f"f{j}" for j in range(model.sample_rows.shape[1])]


def invocations_body(model: BenchModel, rows: np.ndarray) -> bytes:
    return json.dumps({"dataframe_split": {"columns": column_names(model), "data": rows.tolist()}}).encode()


def save_mlflow_model(mlflow_bin: Path, model: BenchModel, target: Path) -> Path:
    python = mlflow_bin.parent / "python"
    columns = json.dumps(column_names(model))
    subprocess.run(
        [str(python), "-c", SAVE_SCRIPT, str(model.model_dir / "model.joblib"), str(target), columns],
        check=True,
        capture_output=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": f"file://{target.parent / 'mlruns'}"},
    )
    return target


def mlflow_serve(mlflow_bin: Path, mlflow_dirs: dict[str, Path]) -> ServerKind:
    def command(model, http_port, grpc_port, workdir):
        # Its uvicorn is found on PATH: the venv's bin first.
        path = f"PATH={mlflow_bin.parent}:{os.environ['PATH']}"
        serve = ["models", "serve", "-m", str(mlflow_dirs[model.name]), "--env-manager", "local"]
        return ["env", path, str(mlflow_bin), *serve, "-h", "127.0.0.1", "-p", str(http_port)]

    return ServerKind("mlflow", f"mlflow models serve (MLflow {MLFLOW_VERSION})", ("mlflow",), command, "/ping")


def post(url: str, body: bytes) -> dict:
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def measure(server: RunningServer, path: str, body: bytes, args) -> dict:
    model = server.model
    url = server.http_url + path
    try:
        answer = post(url, body)
        got = answer["predictions"] if "predictions" in answer else answer["outputs"][0]["data"]
        problem = check_predictions(model, model.rows(1), list(np.ravel(got)))
    except Exception as exc:  # a server that cannot answer gets an INVALID run, not a crash of the harness
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        return loadgen.LoadResult(0.0, 0.0, 0.0, 0, problem).to_json()
    loadgen.run_wrk(url, body, args.warmup)
    return loadgen.run_wrk(url, body, args.duration).to_json()


def run(args) -> dict:
    mlflow_bin = ensure_mlflow()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = {name: MODEL_BUILDERS[name](tmp / "models") for name in ("iris", "rf100")}
        mlflow_dirs = {name: save_mlflow_model(mlflow_bin, m, tmp / "mlflow" / name) for name, m in models.items()}
        ours, theirs = this_server(), mlflow_serve(mlflow_bin, mlflow_dirs)
        for round_index in range(args.rounds):
            for name, model in models.items():
                body, v2 = invocations_body(model, model.rows(1)), v2_body(model.rows(1))
                for kind, runs in (
                    (ours, [("invocations", "/invocations", body), ("v2-rest", f"/v2/models/{name}/infer", v2)]),
                    (theirs, [("invocations", "/invocations", body)]),
                ):
                    server = RunningServer(kind, model, tmp / "run" / f"{kind.key}-{name}-{round_index}")
                    print(f"round {round_index + 1}: {kind.key} {name}", flush=True)
                    server.start()
                    try:
                        for protocol, path, request in runs:
                            result = measure(server, path, request, args)
                            records.append({"server": kind.key, "model": name, "protocol": protocol, **result})
                    finally:
                        server.stop()
    settings = {"mlflow": MLFLOW_VERSION, "duration_s": args.duration, "rounds": args.rounds}
    return {**provenance(), **settings, **summarize(records)}


def summarize(records: list[dict]) -> dict:
    medians = {}
    for key in {(r["server"], r["model"], r["protocol"]) for r in records}:
        runs = [r for r in records if (r["server"], r["model"], r["protocol"]) == key]
        valid = all(r["valid"] for r in runs)
        medians[key] = {
            "req_per_s": statistics.median(r["req_per_s"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "valid": valid,
            "invalid_reason": next((r["invalid_reason"] for r in runs if not r["valid"]), None),
        }
    targets = []
    for model in ("iris", "rf100"):
        ours, v2 = medians.get(("model-server", model, "invocations")), medians.get(("model-server", model, "v2-rest"))
        mlflow = medians.get(("mlflow", model, "invocations"))
        if not (ours and v2 and mlflow and ours["valid"] and v2["valid"] and mlflow["valid"]):
            targets.append({"model": model, "target": "all", "met": False, "value": "INVALID run"})
            continue
        checks = [
            (f"req/s >= {MIN_VS_MLFLOW:g}x mlflow", ours["req_per_s"] / mlflow["req_per_s"], MIN_VS_MLFLOW, True),
            ("p99 <= 1/5 of mlflow's", ours["p99_ms"] / mlflow["p99_ms"], MAX_P99_VS_MLFLOW, False),
            (f"req/s >= {MIN_VS_V2:g}x our V2 REST", ours["req_per_s"] / v2["req_per_s"], MIN_VS_V2, True),
        ]
        for target, value, bound, at_least in checks:
            met = value >= bound if at_least else value <= bound
            targets.append({"model": model, "target": target, "value": round(value, 3), "met": met})
    rows = [{"server": s, "model": m, "protocol": p, **v} for (s, m, p), v in sorted(medians.items())]
    return {"medians": rows, "targets": targets}


def render(result: dict) -> str:
    lines = [
        f"Measured {result['date']} on {result['machine']}; this server at commit {result['commit']}; "
        f"MLflow {result['mlflow']}; wrk -t1 -c16 -d{result['duration_s']}s, single-row JSON, "
        f"median of {result['rounds']} alternating rounds.",
        "",
        "| model | server | route | req/s | p50 ms | p99 ms | valid |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for row in result["medians"]:
        server = "this server" if row["server"] == "model-server" else "mlflow models serve"
        route = "/invocations (dataframe_split)" if row["protocol"] == "invocations" else "/v2/models/NAME/infer"
        valid = "yes" if row["valid"] else f"INVALID: {report.one_line(row['invalid_reason'] or '')}"
        lines.append(
            f"| {row['model']} | {server} | {route} | {row['req_per_s']:,.0f} | "
            f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {valid} |"
        )
    lines += ["", "| model | target | value | met |", "|---|---|---:|---|"]
    for target in result["targets"]:
        value = target["value"] if isinstance(target["value"], str) else f"{target['value']:.2f}"
        lines.append(f"| {target['model']} | {target['target']} | {value} | {'yes' if target['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.mlflow_invocations", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="1 s runs after 1 s of warm-up, 1 round")
    parser.add_argument("--duration", type=int, help="seconds of measured load per run (default 5)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up before each run (default 2)")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--update-readme", action="store_true", help="also put the tables into benchmarks/README.md")
    args = parser.parse_args(argv)
    args.duration = args.duration or (1 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if loadgen.missing_tools():
        raise SystemExit(f"needs {', '.join(loadgen.missing_tools())} (apt-get install wrk nghttp2-client)")
    result = run(args)
    report.publish(result, render(result), args.out / "mlflow_invocations", SECTION, args.update_readme)


if __name__ == "__main__":
    main()
