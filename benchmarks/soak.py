"""Soak and memory bounds: minutes of steady load, and what single clients can cost.

    python -m benchmarks.soak                 # make soak: 10 minutes at 70% of peak
    python -m benchmarks.soak --minutes 1     # a short look

1. Peak: single-row V2 REST iris req/s, wrk -c16 for 5 s.
2. Memory probes, each from a fresh baseline: a 10 MB V1 body (400,000 rows; over
   --max_request_rows, so refused after decoding), a 2.6 MB body within the limits, and 20
   connections each sending 16 MB of a header that never ends. RSS right after each, and 2 s later.
3. Soak: h2load --h1 at a fixed rate (70% of the peak) for --minutes, one run per minute, its
   per-request log read for errors and p99; RSS at the start and after every minute.

Goals (issue "Reliability"): 0 errors, RSS growth <= 5% over the soak, p99 without drift.
Results: benchmarks/results/soak.{json,md}; --update-readme writes the table into
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from benchmarks import loadgen, report
from benchmarks.run import provenance
from benchmarks.servers import REPO_ROOT, RunningServer, this_server
from benchmarks.workloads import build_iris, v2_body

CONNECTIONS = 16
SECTION = "soak results"


def measure_peak(server: RunningServer, body: bytes) -> float:
    result = loadgen.run_wrk(f"{server.http_url}/v2/models/iris/infer", body, 5)
    if not result.valid:
        raise SystemExit(f"peak run failed: {result.invalid_reason}")
    return result.req_per_s


def rss_mb(server: RunningServer) -> float:
    """The server process's own RSS (its body-decoding helper is reported apart)."""
    return server.memory_of(server.process.pid)


def memory_probes(server: RunningServer) -> list[dict]:
    url = f"{server.http_url}/v1/models/iris:predict"
    rows = np.random.default_rng(0).normal(size=(400_000, 4)).round(3).tolist()
    big = orjson.dumps({"instances": rows})
    within = orjson.dumps({"instances": rows[:90_000]})

    def post(body):
        return lambda: httpx.post(url, content=body, timeout=120).status_code

    probes = [
        (f"one V1 body of {len(big) / 1e6:.1f} MB (400,000 rows)", post(big)),
        (f"one V1 body of {len(within) / 1e6:.1f} MB (90,000 rows)", post(within)),
        ("20 connections x 16 MB of unterminated headers", lambda: header_flood(server, 20, 16 << 20)),
    ]
    results = []
    for what, action in probes:
        before = rss_mb(server)
        outcome = action()
        during = rss_mb(server)
        time.sleep(2)
        results.append(
            {
                "probe": what,
                "outcome": str(outcome),
                "rss_before_mb": before,
                "rss_after_mb": during,
                "rss_2s_later_mb": rss_mb(server),
            }
        )
    return results


def header_flood(server: RunningServer, connections: int, size: int) -> str:
    """Each connection sends `size` bytes of one header line; counts how they ended."""
    ends = []

    def flood():
        with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
            sent = 0
            try:
                sock.sendall(b"POST /v1/models/iris:predict HTTP/1.1\r\nhost: x\r\nx-big: ")
                while sent < size:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
                ends.append(f"all {sent} bytes accepted")
            except OSError:
                ends.append(f"closed by the server after {sent} bytes")

    threads = [threading.Thread(target=flood) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    closed = sum("closed" in e for e in ends)
    return f"{closed} of {connections} connections closed by the server (431)"


def soak(server: RunningServer, body: bytes, rate: float, minutes: int, workdir: Path, seconds: int = 60) -> list[dict]:
    body_file = workdir / "body.json"
    body_file.write_bytes(body)
    minutes_out = []
    for minute in range(1, minutes + 1):
        log = workdir / f"minute-{minute}.log"
        subprocess.run(
            [
                "h2load",
                "--h1",
                f"-c{CONNECTIONS}",
                f"--rps={rate / CONNECTIONS:.2f}",
                "-D",
                str(seconds),
                "-d",
                str(body_file),
                "-H",
                "content-type: application/json",
                f"--log-file={log}",
                f"{server.http_url}/v2/models/iris/infer",
            ],
            check=True,
            capture_output=True,
        )
        statuses, latencies_us = [], []
        for line in log.read_text().splitlines():
            _, status, duration = line.split("\t")[:3]
            statuses.append(int(status))
            latencies_us.append(int(duration))
        latencies = np.array(latencies_us) / 1000
        errors = sum(s != 200 for s in statuses)
        minutes_out.append(
            {
                "minute": minute,
                "requests": len(statuses),
                "errors": errors,
                "p50_ms": float(np.percentile(latencies, 50)),
                "p99_ms": float(np.percentile(latencies, 99)),
                "rss_mb": rss_mb(server),
            }
        )
        print(json.dumps(minutes_out[-1]), flush=True)
    return minutes_out


def _row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def render(result: dict) -> str:
    s = result["summary"]
    lines = [
        f"Measured {result['date']} on {result['machine']}; this server at commit {result['commit']}. "
        f"Peak single-row V2 REST (wrk -c16, 5 s): {result['peak_req_s']:,.0f} req/s; soak rate "
        f"{result['rate_req_s']:,.0f} req/s ({result['load']:.0%}), h2load --h1 -c16 at a fixed rate.",
        "",
        "| minute | requests | errors | p50 ms | p99 ms | RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            _row(
                m["minute"],
                f"{m['requests']:,}",
                m["errors"],
                f"{m['p50_ms']:.2f}",
                f"{m['p99_ms']:.2f}",
                f"{m['rss_mb']:.0f}",
            )
            for m in result["minutes"]
        ),
        "",
        f"Errors {s['errors']} of {s['requests']:,} (goal 0); RSS {s['rss_start_mb']:.0f} -> {s['rss_end_mb']:.0f} MB "
        f"({s['rss_growth']:+.1%}, goal <= +5%); p99 in the first and last minute: "
        f"{s['p99_first_ms']:.2f} and {s['p99_last_ms']:.2f} ms.",
        "",
        "| what one client sends | outcome | RSS before MB | RSS right after MB | 2 s later MB |",
        "|---|---|---:|---:|---:|",
        *(
            _row(
                p["probe"], p["outcome"], *(f"{p[k]:.0f}" for k in ("rss_before_mb", "rss_after_mb", "rss_2s_later_mb"))
            )
            for p in result["memory"]
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10, help="soak length")
    parser.add_argument("--load", type=float, default=0.7, help="soak rate as a share of the measured peak")
    parser.add_argument(
        "--minute-seconds", type=int, default=60, help="length of each measured 'minute' (for quick checks)"
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--update-readme", action="store_true", help="also put the tables into benchmarks/README.md")
    args = parser.parse_args(argv)
    missing = loadgen.missing_tools()
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} (apt-get install wrk nghttp2-client)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        model = build_iris(workdir / "models")
        server = RunningServer(this_server(), model, workdir / "server")
        server.start()
        try:
            body = v2_body(model.rows(1))
            peak = measure_peak(server, body)
            memory = memory_probes(server)
            start_rss = rss_mb(server)
            minutes = soak(server, body, peak * args.load, args.minutes, workdir, args.minute_seconds)
        finally:
            server.stop()
    total = sum(m["requests"] for m in minutes)
    result = {
        **provenance(),
        "peak_req_s": peak,
        "load": args.load,
        "rate_req_s": peak * args.load,
        "memory": memory,
        "minutes": minutes,
        "summary": {
            "requests": total,
            "errors": sum(m["errors"] for m in minutes),
            "rss_start_mb": start_rss,
            "rss_end_mb": minutes[-1]["rss_mb"],
            "rss_growth": minutes[-1]["rss_mb"] / start_rss - 1,
            "p99_first_ms": minutes[0]["p99_ms"],
            "p99_last_ms": minutes[-1]["p99_ms"],
        },
    }
    report.publish(result, render(result), args.out / "soak", SECTION, args.update_readme)


if __name__ == "__main__":
    main()
