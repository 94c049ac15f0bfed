"""Hot reload under load: swaps of the served version while clients keep sending.

    python -m benchmarks.hot_reload              # make bench-reload: 20 swaps
    python -m benchmarks.hot_reload --quick      # 3 swaps: a short look

Twice: the single process (--workers 1: the new version loads in a thread beside serving) and
--workers 2 (the supervisor loads at low priority, then replaces the workers with fresh forks,
kserve/reloader.py). Each server watches a versions directory (--watch, every 0.2 s). wrk -c16
sends single-row V2 requests, first for a baseline run with no swap, then for a run of the same
length during which a new version is published (written aside, renamed into place) every --every
seconds, alternating the demo's logistic regression and random forest. Reported for each: non-2xx
responses and socket errors (goal 0), whether every version took traffic, the p99 of both runs
(goal: with swaps <= 1.5x without), and the goal met or not.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from benchmarks import loadgen, report
from benchmarks.run import provenance
from benchmarks.servers import REPO_ROOT, RunningServer, this_server
from benchmarks.workloads import BenchModel, v2_body
from model_server.demo import publish_version, write_demo_model

SECTION = "hot reload results"


def swap_while_loaded(server: RunningServer, versions: Path, demos: tuple[Path, Path], swaps: int, every: float):
    """Publish `swaps` versions, one every `every` seconds, then wait (up to a minute) for the last
    to serve; returns the versions seen serving (one that loads slower than `every` is skipped
    for a newer one, as --watch does)."""
    seen = []
    last = str(swaps + 1)
    for version in range(2, swaps + 2):
        publish_version(versions, version, demos[version % 2])
        deadline = time.monotonic() + (every if version < swaps + 1 else 60)
        while time.monotonic() < deadline and not (version == swaps + 1 and seen[-1:] == [last]):
            current = httpx.get(f"{server.http_url}/v2/models/iris", timeout=5).json()["versions"][-1]
            if not seen or seen[-1] != current:
                seen.append(current)
            time.sleep(0.05)
    return seen


WORKERS = (1, 2)  # the single process (issue 15's figure) and the supervisor's roll-over (issue 22)


def measure(workers: int, swaps: int, every: float, tmp: Path) -> dict:
    """One server (--workers N) on a fresh versions directory: wrk without swaps, then with them."""
    demos = (write_demo_model(tmp / "demo-1", 1), write_demo_model(tmp / "demo-2", 2))
    versions = tmp / "iris"
    versions.mkdir()
    publish_version(versions, 1, demos[0])
    model = BenchModel("iris", versions, None, None)
    args = ("--watch=true", "--watch_interval_seconds=0.2", f"--workers={workers}")
    server = RunningServer(this_server(args), model, tmp / "server")
    server.start()
    try:
        body = v2_body(np.array([[5.1, 3.5, 1.4, 0.2]]))
        url = f"{server.http_url}/v2/models/iris/infer"
        duration = int(swaps * every + 1)
        baseline = loadgen.run_wrk(url, body, duration)
        seen = []
        swapper = threading.Thread(target=lambda: seen.extend(swap_while_loaded(server, versions, demos, swaps, every)))
        swapper.start()
        swapping = loadgen.run_wrk(url, body, duration)
        swapper.join()
    finally:
        server.stop()
    # In order of first sight: during a roll-over, a poll may reach a worker still on the one before.
    served = list(dict.fromkeys(seen))
    every_version = served == [str(v) for v in range(1, swaps + 2)]
    ratio = swapping.p99_ms / baseline.p99_ms
    return {
        "workers": workers,
        "versions_served": served,
        "every_version_served": every_version,
        "baseline": baseline.to_json(),
        "swapping": swapping.to_json(),
        "p99_ratio": ratio,
        "goal_met": swapping.valid and baseline.valid and every_version and ratio <= 1.5,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hot_reload", description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 swaps: checks the harness, not the figures")
    parser.add_argument("--every", type=float, default=1.5, help="seconds between two published versions")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--update-readme", action="store_true", help="also put the table into benchmarks/README.md")
    args = parser.parse_args(argv)
    swaps = 3 if args.quick else args.swaps
    if loadgen.missing_tools():
        raise SystemExit(f"needs {', '.join(loadgen.missing_tools())} (apt-get install wrk nghttp2-client)")
    runs = []
    for workers in WORKERS:
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(measure(workers, swaps, args.every, Path(tmp)))
    result = {**provenance(), "swaps": swaps, "runs": runs}
    report.publish(result, render(result), args.out / "hot_reload", SECTION, args.update_readme)


def _row(name: str, run: dict) -> str:
    cells = (name, f"{run['requests']:,}", f"{run['req_per_s']:,.0f}", f"{run['p50_ms']:.2f}", f"{run['p99_ms']:.2f}")
    return "| " + " | ".join((*cells, run["invalid_reason"] or "none")) + " |"


def _process(workers: int) -> str:
    return "1 process" if workers == 1 else f"{workers} workers"


def render(result: dict) -> str:
    lines = [
        f"Measured {result['date']} on {result['machine']}; this server at commit {result['commit']}; "
        f"wrk -c16, single-row V2 REST, {result['swaps']} swaps.",
        "",
        "| server | run | requests | req/s | p50 ms | p99 ms | failed responses |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for run in result["runs"]:
        for name, key in (("no swap", "baseline"), (f"{result['swaps']} swaps", "swapping")):
            lines.append(f"| {_process(run['workers'])} " + _row(name, run[key]))
    lines.append("")
    lines.append("Goal (issue 22): 0 failed responses, every version served, p99 with swaps <= 1.5x p99 without.")
    lines.append("")
    for run in result["runs"]:
        failed = "0 failed" if run["swapping"]["invalid_reason"] is None else "failed responses"
        lines.append(
            f"- {_process(run['workers'])}: p99 with swaps / without {run['p99_ratio']:.2f}x, {failed}, "
            f"{'every version served' if run['every_version_served'] else 'not every version served'} "
            f"({', '.join(run['versions_served'])}): goal **{'met' if run['goal_met'] else 'not met'}**."
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
