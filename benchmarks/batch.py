"""``make bench-batch``: batch scoring measured side by side with its anchors, in one run.

For iris LR (4 features) and RF-100 (20 features), N rows (default 1M), Parquet in, Parquet out:

- **raw engine**: the predictor's engine (``LinearEngine``, ``OnnxEngine``) predicting the whole
  array already in memory, one call: the floor of what scoring can cost;
- **batch**: ``python -m model_server.batch`` (default workers: every CPU), as a process; its
  own scoring time (read, check, predict, write, commit) and the wall time with start-up;
- **naive script**: what a user writes: ``pd.read_parquet`` + ``joblib.load(...).predict`` +
  ``to_parquet``, whole file in memory, as a process;
- **mlserver infer**: MLServer 1.7's batch command against a running MLServer (the harness's
  venv), fed the same rows as JSON Lines of V2 requests.

Also: the output is compared byte for byte between two runs and between 1 and N workers, and the
peak RSS of the batch process on 10x the rows (iris) against N rows. No figure is asserted
anywhere: ``benchmarks/README.md`` shows the table.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.run import git_commit
from benchmarks.servers import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
README = REPO_ROOT / "benchmarks" / "README.md"
START, END = "<!-- batch results: start -->", "<!-- batch results: end -->"
NAIVE = """
import sys, time
started = time.perf_counter()
import joblib, pandas as pd
source, model_file, target, columns = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
loaded = time.perf_counter()
frame = pd.read_parquet(source)
model = joblib.load(model_file)
pd.DataFrame({"predict": model.predict(frame[columns].values)}).to_parquet(target)
print(time.perf_counter() - loaded)
"""


def write_input(model, rows: int, path: Path) -> tuple[list[str], np.ndarray]:
    """``rows`` rows around the model's own sample rows (fixed seed), as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    sample = model.sample_rows
    X = sample[rng.integers(0, len(sample), rows)] + rng.normal(0, 0.05, (rows, sample.shape[1]))
    columns = model.feature_names or [f"f{j}" for j in range(X.shape[1])]
    pq.write_table(pa.table({name: X[:, j] for j, name in enumerate(columns)}), path)
    return columns, X


def run_batch(model_dir: Path, source: Path, out: Path, positional: bool, workers: int | None):
    argv = [
        sys.executable,
        "-m",
        "model_server.batch",
        f"--model_dir={model_dir}",
        f"--input={source}",
        f"--output={out}",
        "--outputs=predict",
        "--progress=none",
        "--overwrite",
    ]
    argv += ["--positional"] if positional else []
    argv += [f"--workers={workers}"] if workers else []
    wall, rss, done = peak_rss_run(argv)
    if done.returncode != 0:
        raise RuntimeError(f"batch failed ({done.returncode}): {done.stderr[-2000:]}")
    return wall, rss, json.loads(done.stdout)


def peak_rss_run(argv: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Run to the end; wall seconds and the child's peak RSS in MiB: its VmHWM, polled from /proc.
    Not ru_maxrss: Linux keeps that across exec, so it would count this process's own pages from
    before the child's exec."""
    started = time.perf_counter()
    peak_kib = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO_ROOT)
        while process.poll() is None:
            try:
                for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kib = max(peak_kib, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - started
        out.seek(0), err.seek(0)
        done = subprocess.CompletedProcess(argv, process.returncode, out.read().decode(), err.read().decode())
    return wall, peak_kib / 1024, done


def digest(directory: Path) -> str:
    sha = hashlib.sha256()
    for part in sorted(directory.glob("part-*")):
        sha.update(part.name.encode() + part.read_bytes())
    return sha.hexdigest()


def raw_engine_seconds(model_dir: Path, X: np.ndarray) -> tuple[float, str]:
    from model_server.core.predictor import Predictor, _engine_name

    predictor = Predictor.load(model_dir)
    engine = predictor.engine
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        engine.predict(X)
        best = min(best, time.perf_counter() - started)
    return best, _engine_name(engine, predictor.estimator)  # as the server's load log names it


def mlserver_infer(model, X: np.ndarray, workdir: Path, rows_per_request: int) -> float:
    """Wall seconds of ``mlserver infer`` over X, against a running MLServer."""
    from benchmarks.mlserver_env import ensure_mlserver
    from benchmarks.servers import RunningServer, mlserver

    binary = ensure_mlserver()
    workdir.mkdir(parents=True, exist_ok=True)
    requests = workdir / "requests.jsonl"
    with open(requests, "w") as f:
        for i, start in enumerate(range(0, len(X), rows_per_request)):
            rows = X[start : start + rows_per_request]
            tensor = {"name": "input-0", "datatype": "FP64", "shape": list(rows.shape), "data": rows.ravel().tolist()}
            f.write(json.dumps({"id": str(i), "inputs": [tensor]}) + "\n")
    server = RunningServer(mlserver(binary), model, workdir)
    server.start()
    try:
        started = time.perf_counter()
        done = subprocess.run(
            [
                str(binary),
                "infer",
                "-u",
                f"127.0.0.1:{server.http_port}",
                "-m",
                model.name,
                "-i",
                str(requests),
                "-o",
                str(workdir / "responses.jsonl"),
                "--workers",
                "10",
                "--transport",
                "rest",
            ],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
    finally:
        server.stop()
    if done.returncode != 0:
        raise RuntimeError(f"mlserver infer failed: {done.stderr[-2000:]}")
    with open(workdir / "responses.jsonl") as responses:
        answered = sum(1 for _ in responses)
    if answered != -(-len(X) // rows_per_request):
        raise RuntimeError(f"mlserver infer answered {answered} requests of {-(-len(X) // rows_per_request)}")
    return seconds


def measure(name: str, rows: int, root: Path, args) -> dict:
    from benchmarks.workloads import MODEL_BUILDERS

    model = MODEL_BUILDERS[name](root / "models")
    model.feature_names = ["sepal_length", "sepal_width", "petal_length", "petal_width"] if name == "iris" else None
    source = root / f"{name}.parquet"
    columns, X = write_input(model, rows, source)
    positional = model.feature_names is None
    result = {"model": name, "rows": rows}
    result["raw_engine_s"], result["engine"] = raw_engine_seconds(model.model_dir, X)
    runs = [run_batch(model.model_dir, source, root / f"out-{name}-{i}", positional, None) for i in range(2)]
    wall, rss, summary = min(runs, key=lambda r: r[2]["seconds"])
    result |= {"batch_wall_s": wall, "batch_scoring_s": summary["seconds"], "batch_rss_mib": rss}
    _, _, one = run_batch(model.model_dir, source, root / f"out-{name}-one", positional, 1)
    result["bit_identical_runs"] = digest(root / f"out-{name}-0") == digest(root / f"out-{name}-1")
    result["bit_identical_workers"] = digest(root / f"out-{name}-0") == digest(root / f"out-{name}-one")
    result["batch_one_worker_scoring_s"] = one["seconds"]
    naive_wall, _, naive = peak_rss_run(
        [
            sys.executable,
            "-c",
            NAIVE,
            str(source),
            str(model.model_dir / "model.joblib"),
            str(root / "naive.parquet"),
            ",".join(columns),
        ]
    )
    if naive.returncode != 0:
        raise RuntimeError(naive.stderr[-2000:])
    result |= {"naive_wall_s": naive_wall, "naive_work_s": float(naive.stdout.strip())}
    if not args.skip_mlserver:
        result["mlserver_infer_s"] = mlserver_infer(model, X, root / f"mlserver-{name}", args.rows_per_request)
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def rss_scaling(rows: int, big_rows: int, root: Path) -> dict:
    from benchmarks.workloads import build_iris

    model = build_iris(root / "rss-models")
    model.feature_names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    figures = {}
    for n in (rows, big_rows):
        source = root / f"rss-{n}.parquet"
        write_input(model, n, source)
        _, rss, summary = run_batch(model.model_dir, source, root / f"rss-out-{n}", False, None)
        source.unlink()
        figures[n] = {"rss_mib": rss, "scoring_s": summary["seconds"]}
    return {
        "rows": rows,
        "big_rows": big_rows,
        "rss_mib": figures[rows]["rss_mib"],
        "big_rss_mib": figures[big_rows]["rss_mib"],
        "ratio": figures[big_rows]["rss_mib"] / figures[rows]["rss_mib"],
    }


def markdown(report: dict) -> str:
    meta = report["meta"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']}; {meta['rows']:,} rows per model, Parquet in and out, "
        f"batch with {meta['workers']} workers (every CPU); best of 2 batch runs; this server at commit "
        f"{meta['commit']}; 1-minute load average {meta['load_average'][0]} before, {meta['load_average'][1]} after.",
        "",
        "| model | engine | raw engine rows/s | batch rows/s (scoring) | vs raw | batch wall s | naive script wall s "
        "| batch vs naive (wall) | mlserver infer s | batch vs mlserver (wall) | same bytes: 2 runs / 1 vs N workers |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report["models"]:
        rows = r["rows"]
        raw, scoring = rows / r["raw_engine_s"], rows / r["batch_scoring_s"]
        mlserver = r.get("mlserver_infer_s")
        lines.append(
            f"| {r['model']} | {r['engine']} | {raw:,.0f} | {scoring:,.0f} | {scoring / raw:.2f}x | "
            f"{r['batch_wall_s']:.2f} | {r['naive_wall_s']:.2f} | {r['naive_wall_s'] / r['batch_wall_s']:.2f}x | "
            + (f"{mlserver:.1f} | {mlserver / r['batch_wall_s']:.1f}x" if mlserver else "- | -")
            + f" | {'yes' if r['bit_identical_runs'] else 'NO'} / {'yes' if r['bit_identical_workers'] else 'NO'} |"
        )
    rss = report["rss"]
    lines += [
        "",
        f"Peak RSS of the batch process (iris): {rss['rows']:,} rows {rss['rss_mib']:.0f} MiB, "
        f"{rss['big_rows']:,} rows {rss['big_rss_mib']:.0f} MiB: {rss['ratio']:.2f}x.",
    ]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["raw engine", "batch (scoring)", "batch (wall)", "naive script (wall)", "mlserver infer (wall)"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(report["models"])
    for i, r in enumerate(report["models"]):
        rows = r["rows"]
        values = [
            rows / r["raw_engine_s"],
            rows / r["batch_scoring_s"],
            rows / r["batch_wall_s"],
            rows / r["naive_wall_s"],
            rows / r["mlserver_infer_s"] if r.get("mlserver_infer_s") else 0,
        ]
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=r["model"])
    ax.set_xticks([x + width / 2 for x in range(len(labels))], labels, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("rows/s (log)")
    ax.set_title(f"Batch scoring, {report['meta']['rows']:,} rows, Parquet in and out ({report['meta']['date']})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rss-rows", type=int, default=10_000_000, help="the larger run of the RSS comparison")
    parser.add_argument("--models", default="iris,rf100")
    parser.add_argument("--skip-mlserver", action="store_true", help="no mlserver infer (it needs its own venv)")
    parser.add_argument("--rows-per-request", type=int, default=1000, help="rows per V2 request for mlserver infer")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--update-readme", action="store_true")
    args = parser.parse_args(argv)
    from model_server.batch.runner import usable_cpus

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        models = [measure(name, args.rows, root, args) for name in args.models.split(",")]
        rss = rss_scaling(args.rows, args.rss_rows, root)
    report = {
        "meta": {
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
            f"{platform.release()}",
            "rows": args.rows,
            "workers": usable_cpus(),
            "commit": git_commit(),
            # Other work on the machine moves every figure: the 1-minute load before and after.
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "models": models,
        "rss": rss,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "batch.md").write_text(table)
    chart(report, args.out / "batch.png")
    print(table, end="")
    if args.update_readme:
        text = README.read_text()
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        README.write_text(f"{before}{START}\n{table}{END}{after}")


if __name__ == "__main__":
    main()
