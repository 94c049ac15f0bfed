"""Payload logging's and drift's overhead: the server with every request logged to Kafka, and
the server monitoring drift against a profile.json, beside the same server with neither, in one run.

    python -m benchmarks.payload_log            # make bench-payload-log: iris and RF-100, 3 rounds of 5 s
    python -m benchmarks.payload_log --quick    # 1 round of 1 s runs, iris only

One tansu broker (in memory) on 127.0.0.1. For each model, rounds alternate the server without
payload logging and with ``--log_payloads all --log_sink kafka://.../payloads``; wrk -c16 sends
single-row V2 REST requests (2 s warm-up, then the measured run). The drift variant serves a
copy of the model directory with a profile.json written by ``python -m model_server.profile``
from the model's sample rows. Targets (issue 25): logged >= 0.9x the req/s and p99 <= 1.1x of
the server without it, drift >= 0.95x the req/s; events dropped during the run
(``model_server_payload_log_events_total{outcome="dropped"}``, goal 0) are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import loadgen, report
from benchmarks.run import provenance
from benchmarks.servers import REPO_ROOT, RunningServer, this_server
from benchmarks.stream import Broker
from benchmarks.workloads import MODEL_BUILDERS, v2_body

SECTION = "payload log results"
TOPIC = "payloads"


def events(server: RunningServer) -> dict[str, float]:
    """The payload log's outcome counts, from the server's /metrics."""
    counts = {"sent": 0.0, "dropped": 0.0, "failed": 0.0, "drift_series": 0.0}
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "model_server_payload_log_events_total":
                counts[sample.labels["outcome"]] += sample.value
            elif sample.name == "model_server_feature_drift":  # drift is on: one series per feature
                counts["drift_series"] += 1
    return counts


async def create_topic(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 4, 1)])
    finally:
        await admin.close()


def with_profile(model, root: Path):
    """A copy of ``model`` whose directory has a profile.json of its sample rows (features named in
    metadata.json where the estimator has no names: drift needs them)."""
    from benchmarks.workloads import BenchModel

    model_dir = shutil.copytree(model.model_dir, root / f"{model.name}-profiled")
    metadata_path = model_dir / "metadata.json"
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    names = getattr(model.estimator, "feature_names_in_", None)
    if names is None and "features" not in metadata:
        names = [f"f{j}" for j in range(model.sample_rows.shape[1])]
        metadata["features"] = [{"name": n, "datatype": "FP64"} for n in names]
        metadata_path.write_text(json.dumps(metadata))
    names = [f["name"] for f in metadata["features"]] if "features" in metadata else list(names)
    data = root / f"{model.name}-train.parquet"
    pq.write_table(pa.table({n: model.sample_rows[:, j] for j, n in enumerate(names)}), data)
    subprocess.run(
        [sys.executable, "-m", "model_server.profile", "--model_dir", str(model_dir), "--data", str(data)],
        check=True,
        capture_output=True,
        cwd=REPO_ROOT,
    )
    return BenchModel(model.name, model_dir, model.estimator, model.sample_rows)


def measure(model, extra: tuple[str, ...], workdir: Path, args) -> dict:
    server = RunningServer(this_server(extra), model, workdir)
    server.start()
    try:
        url = f"{server.http_url}/v2/models/{model.name}/infer"
        body = v2_body(model.rows(1))
        if args.warmup:
            loadgen.run_wrk(url, body, args.warmup)
        before = events(server)
        result = loadgen.run_wrk(url, body, args.duration).to_json()
        after = events(server)
        result["events"] = {k: after[k] - before[k] for k in ("sent", "dropped", "failed")}
        result["drift_series"] = after["drift_series"]
        return result
    finally:
        server.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.payload_log", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="iris only, 1 round of 1 s runs")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--duration", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--update-readme", action="store_true", help="also put the table into benchmarks/README.md")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.duration = args.duration or (1 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if loadgen.missing_tools():
        raise SystemExit(f"needs {', '.join(loadgen.missing_tools())} (apt-get install wrk nghttp2-client)")
    names = ["iris"] if args.quick else list(MODEL_BUILDERS)
    broker = Broker()
    rows = []
    try:
        asyncio.run(create_topic(broker.bootstrap))
        logged = ("--log_payloads=all", f"--log_sink=kafka://{broker.bootstrap}/{TOPIC}")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            for name in names:
                model = MODEL_BUILDERS[name](tmp / "models")
                profiled = with_profile(model, tmp / "profiled")
                runs = {"off": [], "kafka": [], "drift": []}
                for round_index in range(args.rounds):
                    for variant, served, extra in (
                        ("off", model, ("--drift=false",)),
                        ("kafka", model, ("--drift=false", *logged)),
                        ("drift", profiled, ()),
                    ):
                        workdir = tmp / f"{name}-{variant}-{round_index}"
                        runs[variant].append(measure(served, extra, workdir, args))
                rows.append({"model": name, **{v: _median(r) for v, r in runs.items()}, "runs": runs})
    finally:
        broker.stop()
    for row in rows:
        off, kafka, drift = row["off"], row["kafka"], row["drift"]
        row["req_ratio"] = kafka["req_per_s"] / off["req_per_s"] if off["req_per_s"] else 0.0
        row["p99_ratio"] = kafka["p99_ms"] / off["p99_ms"] if off["p99_ms"] else 0.0
        row["met"] = row["req_ratio"] >= 0.9 and row["p99_ratio"] <= 1.1 and kafka["valid"] and off["valid"]
        row["drift_req_ratio"] = drift["req_per_s"] / off["req_per_s"] if off["req_per_s"] else 0.0
        row["drift_met"] = row["drift_req_ratio"] >= 0.95 and drift["valid"] and off["valid"]
    result = {**provenance(), "rounds": args.rounds, "duration_s": args.duration, "models": rows}
    report.publish(result, render(result), args.out / "payload_log", SECTION, args.update_readme)


def _median(runs: list[dict]) -> dict:
    return {
        "req_per_s": statistics.median(r["req_per_s"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "valid": all(r["valid"] for r in runs),
        "invalid_reason": next((r["invalid_reason"] for r in runs if not r["valid"]), None),
        "events": {k: sum(r["events"][k] for r in runs) for k in ("sent", "dropped", "failed")},
        "drift_series": min(r["drift_series"] for r in runs),
    }


def render(result: dict) -> str:
    lines = [
        f"Measured {result['date']} on {result['machine']}; this server at commit {result['commit']}; "
        f"wrk -c16, single-row V2 REST, median of {result['rounds']} alternating rounds of {result['duration_s']:g} s.",
        "",
        "| model | payload log, drift | req/s | p50 ms | p99 ms | events sent | dropped | failed | failed responses |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["models"]:
        for variant, label in (("off", "off"), ("kafka", "all, to Kafka"), ("drift", "off, drift on")):
            run = row[variant]
            counts = run["events"]
            lines.append(
                f"| {row['model']} | {label} | {run['req_per_s']:,.0f} | {run['p50_ms']:.2f} | {run['p99_ms']:.2f} | "
                f"{counts['sent']:,.0f} | {counts['dropped']:,.0f} | {counts['failed']:,.0f} | "
                f"{run['invalid_reason'] or 'none'} |"
            )
    lines.append("")
    for row in result["models"]:
        dropped = row["kafka"]["events"]["dropped"]
        lines.append(
            f"- {row['model']}: req/s {row['req_ratio']:.2f}x (goal >= 0.9x), p99 {row['p99_ratio']:.2f}x "
            f"(goal <= 1.1x): {'met' if row['met'] else 'NOT met'}; dropped {dropped:,.0f} (goal 0); "
            f"drift req/s {row['drift_req_ratio']:.2f}x (goal >= 0.95x): {'met' if row['drift_met'] else 'NOT met'}."
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
