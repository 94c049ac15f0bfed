"""Cold start, memory and image size: the pickle, its ONNX export, and the edge runtime, beside
stock KServe; and RF-100 through the main image itself.

    python -m benchmarks.footprint                     # part of make bench
    python -m benchmarks.footprint --image localhost/model-server:dev --edge-image localhost/model-server-edge:dev

For the iris logistic regression and the 100-tree forest (benchmarks/workloads.py), each server
is started --rounds times (alternating), and the median reported: cold start is process start
until /v2/models/NAME/ready answers 200, RSS the process tree's right then. Servers: stock KServe
0.21 serving the pickle; this server serving the pickle; this server serving the ONNX directory
`python -m model_server.export` wrote; the edge runtime serving that directory.

With --image (and --edge-image), the images' sizes are reported (uncompressed, and as `save |
gzip`), and RF-100 single-row V2 REST is measured through the main image (the container serving
the pickle, wrk on the host) beside stock KServe, in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks import loadgen, report
from benchmarks.run import provenance
from benchmarks.servers import KSERVE, REPO_ROOT, RunningServer, ServerKind, this_server
from benchmarks.workloads import MODEL_BUILDERS, PROTOCOLS, BenchModel, v2_body

SECTION = "footprint results"
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]


def edge_runtime() -> ServerKind:
    def command(model, http_port, grpc_port, workdir):
        edge = [sys.executable, "-m", "model_server.edge", "--model_name", model.name]
        return [*edge, "--model_dir", str(model.model_dir), "--http_port", str(http_port)]

    return ServerKind("edge", "edge runtime", PROTOCOLS[:2], command)


def exported(model: BenchModel, root: Path) -> BenchModel:
    out = root / f"{model.name}-onnx"
    subprocess.run(
        [sys.executable, "-m", "model_server.export", "--model_dir", str(model.model_dir), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    return BenchModel(model.name, out, model.estimator, model.sample_rows)


def start_and_measure(kind: ServerKind, model: BenchModel, workdir: Path) -> dict:
    server = RunningServer(kind, model, workdir)
    server.start()
    try:
        return {"cold_start_s": server.cold_start_s, **server.memory()}
    finally:
        server.stop()


def image_sizes(engine: list[str], tag: str) -> dict:
    size = int(
        subprocess.run(
            [*engine, "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True, check=True
        ).stdout
    )
    save = subprocess.Popen([*engine, "save", tag], stdout=subprocess.PIPE)
    gzip = subprocess.run(["gzip", "-c"], stdin=save.stdout, capture_output=True, check=True)
    save.wait()
    return {"image": tag, "uncompressed_mb": size / 1e6, "compressed_mb": len(gzip.stdout) / 1e6}


def rf_through_image(engine: list[str], tag: str, model: BenchModel, duration: int) -> dict:
    """RF-100 single-row V2 REST, the container serving the pickle mounted at /mnt/models."""
    name = f"footprint-{int(time.time())}"
    limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
    isolation = ["--read-only", "--tmpfs", "/tmp", "--publish", "127.0.0.1::8080"]
    mount = ["--volume", f"{model.model_dir}:/mnt/models:ro"]
    command = [
        *engine,
        "run",
        "--detach",
        "--name",
        name,
        *limits,
        *isolation,
        *mount,
        tag,
        f"--model_name={model.name}",
    ]
    subprocess.run(command, check=True, capture_output=True)
    try:
        port = (
            subprocess.run([*engine, "port", name, "8080"], capture_output=True, text=True, check=True)
            .stdout.split(":")[-1]
            .strip()
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/v2/models/{model.name}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        logs = subprocess.run([*engine, "logs", name], capture_output=True, text=True).stderr
        body = v2_body(model.rows(1))
        loadgen.run_wrk(f"{url}/v2/models/{model.name}/infer", body, 2)
        result = loadgen.run_wrk(f"{url}/v2/models/{model.name}/infer", body, duration)
        return {
            "req_per_s": result.req_per_s,
            "p99_ms": result.p99_ms,
            "valid": result.valid,
            "onnx": "OnnxEngine" in logs,
        }
    finally:
        subprocess.run([*engine, "rm", "--force", name], capture_output=True)


def kserve_rf(model: BenchModel, workdir: Path, duration: int) -> dict:
    server = RunningServer(KSERVE, model, workdir)
    server.start()
    try:
        body = v2_body(model.rows(1))
        loadgen.run_wrk(f"{server.http_url}/v2/models/{model.name}/infer", body, 2)
        result = loadgen.run_wrk(f"{server.http_url}/v2/models/{model.name}/infer", body, duration)
        return {"req_per_s": result.req_per_s, "p99_ms": result.p99_ms, "valid": result.valid}
    finally:
        server.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.footprint", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="iris,rf100")
    parser.add_argument("--image", help="the main image to size and to measure RF-100 through")
    parser.add_argument("--edge-image", help="the edge image to size")
    parser.add_argument("--duration", type=int, default=5, help="seconds of each RF-100 load run")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--update-readme", action="store_true", help="also put the tables into benchmarks/README.md")
    args = parser.parse_args(argv)
    kinds = {"kserve": KSERVE, "pickle": this_server(), "onnx": this_server(), "edge": edge_runtime()}
    titles = {
        "kserve": "stock KServe, the pickle",
        "pickle": "this server, the pickle",
        "onnx": "this server, the ONNX directory",
        "edge": "edge runtime, the ONNX directory",
    }
    rows, through_image = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.models.split(","):
            pickle_model = MODEL_BUILDERS[name](tmp / "models")
            onnx_model = exported(pickle_model, tmp / "models")
            samples = {key: [] for key in kinds}
            for round_ in range(args.rounds):
                for key, kind in kinds.items():
                    model = onnx_model if key in ("onnx", "edge") else pickle_model
                    samples[key].append(start_and_measure(kind, model, tmp / f"{name}-{key}-{round_}"))
            for key, measured in samples.items():
                rows.append(
                    {
                        "model": name,
                        "server": titles[key],
                        "cold_start_s": statistics.median(m["cold_start_s"] for m in measured),
                        "rss_mb": statistics.median(m["rss_mb"] for m in measured),
                        "processes": measured[0]["processes"],
                    }
                )
            if name == "rf100" and args.image:
                through_image = {
                    "image": rf_through_image(PODMAN, args.image, pickle_model, args.duration),
                    "kserve": kserve_rf(pickle_model, tmp / "kserve-rf", args.duration),
                }
    images = [image_sizes(PODMAN, tag) for tag in (args.image, args.edge_image) if tag]
    result = {
        **provenance(),
        "servers": rows,
        "images": images,
        "rf100_through_image": through_image,
    }
    report.publish(result, render(result), args.out / "footprint", SECTION, args.update_readme)


def render(result: dict) -> str:
    lines = [
        f"Measured {result['date']} on {result['machine']}; this server at commit {result['commit']}; "
        "median of alternating rounds.",
        "",
        "| model | server | cold start to ready (s) | vs KServe | RSS after load (MB) | vs KServe |",
        "|---|---|---:|---:|---:|---:|",
    ]
    baseline = {r["model"]: r for r in result["servers"] if r["server"].startswith("stock KServe")}
    for r in result["servers"]:
        base = baseline[r["model"]]
        start, rss = r["cold_start_s"], r["rss_mb"]
        lines.append(
            f"| {r['model']} | {r['server']} | {start:.2f} | {start / base['cold_start_s']:.2f}x "
            f"| {rss:.0f} | {rss / base['rss_mb']:.2f}x |"
        )
    if result["images"]:
        lines += ["", "| image | uncompressed MB | save \\| gzip MB |", "|---|---:|---:|"]
        lines += [
            f"| `{i['image']}` | {i['uncompressed_mb']:.0f} | {i['compressed_mb']:.0f} |" for i in result["images"]
        ]
    through = result["rf100_through_image"]
    if through:
        image, kserve = through["image"], through["kserve"]
        engine = "ONNX Runtime" if image["onnx"] else "scikit-learn"
        lines += [
            "",
            f"RF-100 single-row V2 REST through the main image: {image['req_per_s']:,.0f} req/s "
            f"(p99 {image['p99_ms']:.2f} ms, predicting with {engine}) vs stock KServe "
            f"{kserve['req_per_s']:,.0f} req/s: {image['req_per_s'] / kserve['req_per_s']:.1f}x.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
