"""--workers: efficiency, memory and cold start of 1, 2 and 4 workers, beside KServe's --workers.

    python -m benchmarks.workers            # part of make bench
    python -m benchmarks.workers --quick    # 2 s runs, a 100-tree forest

- Efficiency: requests served per CPU-second of the server's whole process tree (utime + stime of
  every process in it, from /proc, over the measured run) for 1 and 2 workers under the same load
  (wrk for V2 REST, h2load for V2 gRPC, iris single row). Target: 2 workers >= 0.9x the single
  process. gRPC req/s with 2 workers is shown beside KServe's (its gRPC server has no --workers:
  KServe forks REST workers only).
- Memory: PSS summed over the tree (shared pages split, so it adds up) serving a large forest
  (500 trees grown to depth >= 12; --quick: 100) for 1, 2 and 4 workers, and KServe --workers 4.
  Target: 4 workers <= 1.3x one.
- Cold start: process start to ready, 4 workers over 1. Target: <= 1.2x.

This machine has 2 cores: absolute scaling past 2 cannot be shown here, and a run on a machine
shared with other work is noise-prone; the figures are one run each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import joblib

from benchmarks import loadgen, report
from benchmarks.run import Scenario, check_one_response, provenance
from benchmarks.servers import (
    KSERVE,
    REPO_ROOT,
    RunningServer,
    ServerKind,
    ServerStartError,
    _process_tree,
    this_server,
)
from benchmarks.workloads import (
    GRPC_INFER_PATH,
    MODEL_BUILDERS,
    V2_GRPC,
    V2_REST,
    BenchModel,
    request_body,
    rest_path,
)

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of every live process under ``pid`` (workers included)."""
    total = 0
    for process in _process_tree(pid):
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / TICKS


def with_workers(count: int) -> ServerKind:
    kind = this_server(("--workers", str(count)))
    return ServerKind(f"model-server-w{count}", f"this server, {count} worker(s)", kind.protocols, kind.command)


def kserve_workers(count: int) -> ServerKind:
    def command(model, http_port, grpc_port, workdir):
        return [*KSERVE.command(model, http_port, grpc_port, workdir), "--workers", str(count)]

    return ServerKind(f"kserve-w{count}", f"KServe --workers {count}", KSERVE.protocols, command)


def efficiency(kind: ServerKind, model: BenchModel, protocol: str, seconds: int, workdir: Path) -> dict:
    server = RunningServer(kind, model, workdir)
    try:
        server.start()
    except ServerStartError as exc:
        server.stop()
        return {"server": kind.key, "protocol": protocol, "error": report.one_line(str(exc))}
    try:
        problem, frame_bytes = check_one_response(server, Scenario(model.name, protocol, 1))
        if problem:
            return {"server": kind.key, "protocol": protocol, "error": problem}
        body = request_body(protocol, model.name, model.rows(1))
        if protocol == V2_GRPC:
            url = server.grpc_url + GRPC_INFER_PATH

            def run(duration):
                return loadgen.run_h2load(url, body, frame_bytes, duration)
        else:
            url = server.http_url + rest_path(protocol, model.name)

            def run(duration):
                return loadgen.run_wrk(url, body, duration)

        run(1)  # warm-up
        before = tree_cpu_seconds(server.process.pid)
        result = run(seconds)
        cpu = tree_cpu_seconds(server.process.pid) - before
        return {
            "server": kind.key,
            "protocol": protocol,
            "req_per_s": result.req_per_s,
            "p99_ms": result.p99_ms,
            "cpu_seconds": cpu,
            "req_per_cpu_s": result.requests / cpu if cpu else None,
            "valid": result.valid,
            "invalid_reason": result.invalid_reason,
        }
    finally:
        server.stop()


def large_forest(root: Path, trees: int) -> tuple[BenchModel, int]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    model_dir = root / f"rf{trees}"
    model_dir.mkdir(parents=True, exist_ok=True)
    features, labels = make_classification(n_samples=20000, n_features=20, n_informative=12, random_state=0)
    forest = RandomForestClassifier(n_estimators=trees, max_depth=None, n_jobs=-1, random_state=0)
    forest.fit(features, labels)
    depth = max(tree.get_depth() for tree in forest.estimators_)
    joblib.dump(forest, model_dir / "model.joblib")
    forest.n_jobs = None
    return BenchModel(f"rf{trees}", model_dir, forest, features), depth


def memory_and_start(kind: ServerKind, model: BenchModel, workdir: Path) -> dict:
    server = RunningServer(kind, model, workdir)
    try:
        server.start()
    except ServerStartError as exc:
        server.stop()
        return {"server": kind.key, "error": report.one_line(str(exc))}
    try:
        problem, _ = check_one_response(server, Scenario(model.name, V2_REST, 1))
        return {"server": kind.key, "cold_start_s": server.cold_start_s, **server.memory(), "error": problem}
    finally:
        server.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s runs and a 100-tree forest")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "workers.json")
    args = parser.parse_args(argv)
    seconds, trees = (2, 100) if args.quick else (10, 500)
    missing = loadgen.missing_tools()
    if missing:
        print(f"benchmarks.workers: skipped, {', '.join(missing)} not installed", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        iris = MODEL_BUILDERS["iris"](root)
        load = []
        for protocol in (V2_REST, V2_GRPC):
            for kind in (with_workers(1), with_workers(2)):
                load.append(efficiency(kind, iris, protocol, seconds, root / f"{kind.key}-{protocol}"))
            load.append(efficiency(KSERVE, iris, protocol, seconds, root / f"kserve-{protocol}"))
        forest, depth = large_forest(root, trees)
        size_mb = (forest.model_dir / "model.joblib").stat().st_size / 1e6
        memory = [
            memory_and_start(kind, forest, root / kind.key)
            for kind in (with_workers(1), with_workers(2), with_workers(4), kserve_workers(4))
        ]
    results = {
        **provenance(),
        "quick": args.quick,
        "load": load,
        "forest": {"trees": trees, "max_depth": depth, "pickle_mb": size_mb},
        "memory": memory,
    }
    results["targets"] = targets(load, memory)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))
    return 0


def _find(rows, server, protocol=None):
    return next(r for r in rows if r["server"] == server and (protocol is None or r.get("protocol") == protocol))


def targets(load, memory) -> list[dict]:
    out = []
    for protocol in (V2_REST, V2_GRPC):
        one, two = _find(load, "model-server-w1", protocol), _find(load, "model-server-w2", protocol)
        ratio = (two.get("req_per_cpu_s") or 0) / (one.get("req_per_cpu_s") or float("inf"))
        out.append({"target": f"{protocol}: req per CPU-s, 2 workers >= 0.9x 1", "value": ratio, "met": ratio >= 0.9})
    one, four = _find(memory, "model-server-w1"), _find(memory, "model-server-w4")
    ratio = four["pss_mb"] / one["pss_mb"]
    out.append({"target": "PSS, 4 workers <= 1.3x 1", "value": ratio, "met": ratio <= 1.3})
    ratio = four["cold_start_s"] / one["cold_start_s"]
    out.append({"target": "cold start, 4 workers <= 1.2x 1", "value": ratio, "met": ratio <= 1.2})
    return out


def markdown(results) -> str:
    lines = [f"Workers ({results['date']}, {results['machine']}, commit {results['commit']})", ""]
    lines += ["| server | protocol | req/s | p99 ms | CPU s | req per CPU-s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results["load"]:
        if "error" in r:
            lines.append(f"| {r['server']} | {r['protocol']} | error: {r['error'][:80]} | | | |")
            continue
        valid = "" if r["valid"] else f" (invalid: {r['invalid_reason']})"
        per_cpu = f"{r['req_per_cpu_s']:.0f}" if r["req_per_cpu_s"] else "-"
        lines.append(
            f"| {r['server']} | {r['protocol']} | {r['req_per_s']:.0f}{valid} | {r['p99_ms']:.1f} "
            f"| {r['cpu_seconds']:.1f} | {per_cpu} |"
        )
    forest = results["forest"]
    lines += [
        "",
        f"Forest: {forest['trees']} trees, depth {forest['max_depth']}, {forest['pickle_mb']:.0f} MB pickled",
        "",
    ]
    lines += ["| server | processes | PSS MB | RSS MB (summed) | cold start s |", "| --- | --- | --- | --- | --- |"]
    for r in results["memory"]:
        if "pss_mb" not in r:
            lines.append(f"| {r['server']} | error: {r['error'][:100]} | | | |")
            continue
        lines.append(
            f"| {r['server']} | {r['processes']} | {r['pss_mb']:.0f} | {r['rss_mb']:.0f} | {r['cold_start_s']:.2f} |"
        )
    lines += ["", "| target | value | met |", "| --- | --- | --- |"]
    lines += [f"| {t['target']} | {t['value']:.2f}x | {'met' if t['met'] else 'NOT met'} |" for t in results["targets"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
