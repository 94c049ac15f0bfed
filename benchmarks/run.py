"""Benchmark this server against stock KServe and MLServer, side by side.

    python -m benchmarks.run            # full run (make bench), ~15 min
    python -m benchmarks.run --quick    # ~1 s runs, this server + KServe, iris only

Every round starts each server in turn (only the server under test runs),
records its cold start and RSS, checks one response, warms it up and measures
it; rounds alternate A B C A B C and the report shows the median of rounds.
Results go to benchmarks/results/latest.{json,md,png}; the markdown tables are
also printed, and --update-readme puts them into benchmarks/README.md.
"""

import argparse
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import orjson
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

from benchmarks import loadgen, report
from benchmarks.mlserver_env import MLSERVER_VERSION, ensure_mlserver
from benchmarks.servers import KSERVE, REPO_ROOT, RunningServer, ServerStartError, mlserver, this_server
from benchmarks.workloads import (
    GRPC_INFER_PATH,
    MODEL_BUILDERS,
    PROTOCOLS,
    V2_GRPC,
    check_predictions,
    grpc_frame,
    grpc_request,
    predictions_in,
    request_body,
    rest_path,
)

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Scenario:
    model: str
    protocol: str
    rows: int


FULL_SCENARIOS = [
    Scenario(model, protocol, rows) for model in MODEL_BUILDERS for protocol in PROTOCOLS for rows in (1, 64)
]
QUICK_SCENARIOS = [Scenario("iris", protocol, 1) for protocol in PROTOCOLS]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 s per load run, 2 rounds, this server and KServe, iris single-row only",
    )
    parser.add_argument(
        "--servers",
        default=None,
        help="comma list of model-server,kserve,mlserver (default: all; --quick: model-server,kserve)",
    )
    # whole seconds: wrk takes no fractions
    parser.add_argument("--duration", type=int, default=None, help="seconds per measured load run (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="seconds of warm-up load before each run (default 2)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="alternating rounds; the median is reported (default 3)"
    )
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for this server, repeatable (e.g. --server-arg=--backend=onnx)",
    )
    parser.add_argument("--server-cpus", default=None, help="pin servers to these CPUs, e.g. 0 (default: no pinning)")
    parser.add_argument(
        "--loadgen-cpus", default=None, help="pin wrk/h2load to these CPUs, e.g. 1 (default: no pinning)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory for latest.{json,md,png}")
    parser.add_argument(
        "--update-readme", action="store_true", help="also put the markdown tables into benchmarks/README.md"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.servers = (args.servers or ("model-server,kserve" if quick else "model-server,kserve,mlserver")).split(",")
    args.duration = args.duration or (1 if quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if quick else 2)
    args.rounds = args.rounds or (2 if quick else 3)
    args.scenarios = QUICK_SCENARIOS if quick else FULL_SCENARIOS
    return args


def _cpu_set(spec: str | None) -> set[int] | None:
    return {int(cpu) for cpu in spec.split(",")} if spec else None


# --- one measurement ------------------------------------------------------


def check_one_response(server: RunningServer, scenario: Scenario) -> tuple[str | None, int]:
    """Send one request and check its predictions. Returns (problem or None,
    framed size of the gRPC response message, which h2load's byte count is
    checked against)."""
    model = server.model
    rows = model.rows(scenario.rows)
    try:
        if scenario.protocol == V2_GRPC:
            with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
                infer = channel.unary_unary(GRPC_INFER_PATH)  # bytes in, bytes out: the exact wire message
                raw = infer(grpc_request(model.name, rows).SerializeToString(), timeout=30, wait_for_ready=True)
            response, frame_bytes = pb.ModelInferResponse.FromString(raw), len(grpc_frame(raw))
        else:
            request = urllib.request.Request(
                server.http_url + rest_path(scenario.protocol, model.name),
                data=request_body(scenario.protocol, model.name, rows),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                response, frame_bytes = orjson.loads(answer.read()), 0
        return check_predictions(model, rows, predictions_in(scenario.protocol, response)), frame_bytes
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read()[:300]!r}", 0
    except (grpc.RpcError, OSError, KeyError, IndexError, ValueError) as error:
        return f"{type(error).__name__}: {str(error)[:300]}", 0


def measure(server: RunningServer, scenario: Scenario, args) -> loadgen.LoadResult:
    """Check one response, warm up, then one measured load run."""
    problem, frame_bytes = check_one_response(server, scenario)
    if problem:
        return _failed(f"response check failed: {problem}")
    loadgen_cpus = _cpu_set(args.loadgen_cpus)
    pin = (lambda: os.sched_setaffinity(0, loadgen_cpus)) if loadgen_cpus else None
    body = request_body(scenario.protocol, server.model.name, server.model.rows(scenario.rows))
    if scenario.protocol == V2_GRPC:
        url = server.grpc_url + GRPC_INFER_PATH

        def run(seconds):
            return loadgen.run_h2load(url, body, frame_bytes, seconds, pin)
    else:
        url = server.http_url + rest_path(scenario.protocol, server.model.name)

        def run(seconds):
            return loadgen.run_wrk(url, body, seconds, pin)

    if args.warmup > 0:
        run(args.warmup)
    return run(args.duration)


# --- the whole run --------------------------------------------------------


def machine_description() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    mem_kib = int(
        next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    )
    return f"{cpu}, {os.cpu_count()} CPUs, {mem_kib / 2**20:.0f} GiB RAM, Linux {platform.release()}"


def git_commit() -> str:
    """The commit the server code came from, flagged if model_server/ differs from it."""

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
        except FileNotFoundError:  # no git on this machine (a source tarball needs none)
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + uncommitted changes" if git("status", "--porcelain", "--", "model_server") else "")


def provenance() -> dict:
    """When, where and from which commit a benchmark ran: the head of every result file."""
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine_description(), "commit": git_commit()}


def server_kinds(args):
    kinds = {
        "model-server": lambda: this_server(tuple(args.server_arg)),
        "kserve": lambda: KSERVE,
        "mlserver": lambda: mlserver(ensure_mlserver()),
    }
    unknown = set(args.servers) - set(kinds)
    if unknown:
        raise SystemExit(f"unknown server(s): {', '.join(sorted(unknown))}; choose from {', '.join(kinds)}")
    return [kinds[key]() for key in args.servers]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def measure_server(server: RunningServer, scenarios, round_index: int, startup_samples: list, args) -> list[dict]:
    """Record the started server's cold start and RSS, then run every scenario on it."""
    memory = server.memory()
    startup_samples.append(
        {
            "server": server.kind.key,
            "model": server.model.name,
            "round": round_index,
            "cold_start_s": server.cold_start_s,
            **memory,
        }
    )
    log(
        f"  ready in {server.cold_start_s:.2f} s, RSS {memory['rss_mb']:.0f} MB (PSS {memory['pss_mb']:.0f} MB) "
        f"in {memory['processes']} process(es)"
    )
    records = []
    for scenario in scenarios:
        try:
            result = measure(server, scenario, args)
        except RuntimeError as error:  # the load generator itself failed
            result = _failed(str(error))
        log(
            f"  {scenario.protocol} {scenario.rows:>2} row(s): {result.req_per_s:8.0f} req/s "
            f"p50 {result.p50_ms:7.2f} ms p99 {result.p99_ms:7.2f} ms"
            + ("" if result.valid else f"  INVALID: {report.one_line(result.invalid_reason)}")
        )
        records.append(_run_record(server.kind.key, scenario, round_index, result))
    return records


def run_benchmark(args) -> dict:
    missing = loadgen.missing_tools()
    if missing:
        raise SystemExit(f"missing load generator(s): {', '.join(missing)} (apt-get install wrk nghttp2-client)")
    kinds = server_kinds(args)
    model_names = sorted({s.model for s in args.scenarios}, key=list(MODEL_BUILDERS).index)
    load_runs, startup_samples = [], []
    with tempfile.TemporaryDirectory(prefix="model-server-bench-") as tmp:
        tmp = Path(tmp)
        models = {name: MODEL_BUILDERS[name](tmp / "models") for name in model_names}
        for round_index in range(args.rounds):
            for model in models.values():
                for kind in kinds:
                    scenarios = [s for s in args.scenarios if s.model == model.name and s.protocol in kind.protocols]
                    workdir = tmp / "servers" / f"{kind.key}-{model.name}-{round_index}"
                    log(f"round {round_index + 1}/{args.rounds}: starting {kind.key} with {model.name}")
                    server = RunningServer(kind, model, workdir, _cpu_set(args.server_cpus))
                    try:
                        server.start()
                        load_runs += measure_server(server, scenarios, round_index, startup_samples, args)
                    except ServerStartError as error:
                        log(f"  {kind.key} did not start: {report.one_line(str(error), 2000)}")
                        load_runs += [
                            _run_record(kind.key, s, round_index, _failed(f"server did not start: {error}"))
                            for s in scenarios
                        ]
                    finally:
                        server.stop()
    load = report.summarize_load(load_runs)
    startup = report.summarize_startup(startup_samples)
    ratios = report.compute_ratios(load)
    return {
        "meta": {
            "date": datetime.now(UTC).strftime("%Y-%m-%d"),
            "machine": {
                "description": machine_description(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "settings": {
                "duration_s": args.duration,
                "warmup_s": args.warmup,
                "rounds": args.rounds,
                "connections": loadgen.CONNECTIONS,
                "quick": args.quick,
                "server_cpus": args.server_cpus,
                "loadgen_cpus": args.loadgen_cpus,
                **loadgen.tool_versions(),
            },
            "servers": {kind.key: kind.title for kind in kinds},
            "versions": {
                "model-server": git_commit(),
                "kserve": importlib.metadata.version("kserve"),
                "mlserver": MLSERVER_VERSION,
            },
            "server_args": " ".join(shlex.quote(a) for a in args.server_arg),
        },
        "load": load,
        "startup": startup,
        "ratios": ratios,
        "targets": report.evaluate_targets(load, ratios, startup),
        "runs": load_runs,
        "startup_samples": startup_samples,
    }


def _failed(reason: str) -> loadgen.LoadResult:
    return loadgen.LoadResult(0.0, 0.0, 0.0, 0, invalid_reason=reason[:300])


def _run_record(server: str, scenario: Scenario, round_index: int, result: loadgen.LoadResult) -> dict:
    return {
        "server": server,
        "model": scenario.model,
        "protocol": scenario.protocol,
        "rows": scenario.rows,
        "round": round_index,
        **result.to_json(),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    results = run_benchmark(args)
    paths = report.write_outputs(results, args.out)
    markdown = report.render_markdown(results)
    sys.stdout.write(markdown)
    if args.update_readme:
        report.update_readme(REPO_ROOT / "benchmarks" / "README.md", markdown)
    log("wrote " + ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
