"""Turns the raw per-round measurements into the summary: medians, ratios
against the baselines, the issue's targets, and the JSON / markdown / PNG
files."""

import json
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.workloads import MODEL_BUILDERS, PROTOCOLS

OURS, KSERVE, MLSERVER = "model-server", "kserve", "mlserver"
BASELINES = (KSERVE, MLSERVER)
SERVER_LABELS = {OURS: "this server", KSERVE: "KServe", MLSERVER: "MLServer"}


def _median(values):
    return statistics.median(values) if values else None


def summarize_load(rounds: list[dict]) -> list[dict]:
    """One row per (model, protocol, rows, server): medians over rounds.

    A row is valid only if every round was; its medians are still shown so a
    broken server is visible, but it gets no ratio.
    """
    groups = defaultdict(list)
    for run in rounds:
        groups[(run["model"], run["protocol"], run["rows"], run["server"])].append(run)
    summary = []
    for (model, protocol, rows, server), runs in sorted(groups.items(), key=lambda item: _row_order(*item[0])):
        req_per_s = _median([run["req_per_s"] for run in runs])
        summary.append(
            {
                "model": model,
                "protocol": protocol,
                "rows": rows,
                "server": server,
                "req_per_s": req_per_s,
                "rows_per_s": req_per_s * rows,
                "p50_ms": _median([run["p50_ms"] for run in runs]),
                "p99_ms": _median([run["p99_ms"] for run in runs]),
                "rounds": len(runs),
                "valid": all(run["valid"] for run in runs),
                "invalid_reasons": sorted({run["invalid_reason"] for run in runs if run["invalid_reason"]}),
            }
        )
    return summary


def _row_order(model, protocol, rows, server):
    """Models in build order, protocols as in PROTOCOLS, this server first."""
    return (
        _index(MODEL_BUILDERS, model),
        _index(PROTOCOLS, protocol),
        rows,
        _index((OURS, KSERVE, MLSERVER), server),
        server,
    )


def _index(sequence, item) -> int:
    return list(sequence).index(item) if item in sequence else len(sequence)


def _by_scenario(load: list[dict]) -> dict:
    return {(r["model"], r["protocol"], r["rows"], r["server"]): r for r in load}


def summarize_startup(samples: list[dict]) -> list[dict]:
    groups = defaultdict(list)
    for sample in samples:
        groups[(sample["model"], sample["server"])].append(sample)
    return [
        {
            "model": model,
            "server": server,
            "cold_start_s": _median([s["cold_start_s"] for s in group]),
            "rss_mb": _median([s["rss_mb"] for s in group]),
            "pss_mb": _median([s["pss_mb"] for s in group]),
            "processes": max(s["processes"] for s in group),
            "samples": len(group),
        }
        for (model, server), group in sorted(groups.items(), key=lambda item: _row_order(item[0][0], "", 0, item[0][1]))
    ]


def compute_ratios(load: list[dict]) -> list[dict]:
    """This server against each baseline, per scenario, when both rows are valid."""
    by_key = _by_scenario(load)
    ratios = []
    for (model, protocol, rows, server), ours in by_key.items():
        if server != OURS:
            continue
        for baseline in BASELINES:
            base = by_key.get((model, protocol, rows, baseline))
            if base is None:
                continue
            comparable = ours["valid"] and base["valid"] and ours["req_per_s"] and ours["p99_ms"]
            ratios.append(
                {
                    "model": model,
                    "protocol": protocol,
                    "rows": rows,
                    "baseline": baseline,
                    "throughput_x": ours["req_per_s"] / base["req_per_s"] if comparable else None,
                    "p99_x": base["p99_ms"] / ours["p99_ms"] if comparable else None,  # >1 means ours is lower
                }
            )
    return ratios


# (description, model, protocol, rows, required throughput ratio vs KServe, required p99 ratio)
RATIO_TARGETS = [
    ("iris V2 REST 1 row >= 10x KServe req/s, p99 <= 1/3", "iris", "v2-rest", 1, 10, 3),
    ("RF-100 V2 REST 1 row >= 20x KServe req/s", "rf100", "v2-rest", 1, 20, None),
    ("iris V2 gRPC 1 row >= 5x KServe req/s", "iris", "v2-grpc", 1, 5, None),
    ("iris V1 REST 1 row >= 10x KServe req/s", "iris", "v1-rest", 1, 10, None),
]
COLD_START_TARGET_S = 1.0
RSS_TARGET_MB = 150


def evaluate_targets(load: list[dict], ratios: list[dict], startup: list[dict]) -> list[dict]:
    """The issue's targets that this run measured, each with the figure and whether it is met."""
    targets = []
    vs_kserve = {(r["model"], r["protocol"], r["rows"]): r for r in ratios if r["baseline"] == KSERVE}
    for description, model, protocol, rows, want_x, want_p99_x in RATIO_TARGETS:
        ratio = vs_kserve.get((model, protocol, rows))
        if ratio is None:
            continue
        got_x, got_p99_x = ratio["throughput_x"], ratio["p99_x"]
        measured = (
            "n/a (invalid row)"
            if got_x is None
            else f"{got_x:.1f}x req/s" + (f", p99 {got_p99_x:.1f}x lower" if want_p99_x else "")
        )
        met = got_x is not None and got_x >= want_x and (want_p99_x is None or got_p99_x >= want_p99_x)
        targets.append({"target": description, "measured": measured, "met": met})

    by_key = _by_scenario(load)
    for (model, protocol, rows, server), ours in by_key.items():
        if server != OURS or rows == 1:
            continue
        anchors = [by_key[(model, protocol, rows, b)] for b in BASELINES if (model, protocol, rows, b) in by_key]
        valid_anchors = [a for a in anchors if a["valid"]]
        if not valid_anchors:
            continue
        best = max(valid_anchors, key=lambda a: a["rows_per_s"])
        targets.append(
            {
                "target": f"{model} {protocol} {rows} rows: rows/s >= best baseline ({SERVER_LABELS[best['server']]})",
                "measured": f"{ours['rows_per_s']:.0f} vs {best['rows_per_s']:.0f} rows/s"
                if ours["valid"]
                else "n/a (invalid row)",
                "met": ours["valid"] and ours["rows_per_s"] >= best["rows_per_s"],
            }
        )

    for row in startup:
        if row["server"] == OURS and row["model"] == "iris":
            targets.append(
                {
                    "target": f"cold start to ready <= {COLD_START_TARGET_S} s",
                    "measured": f"{row['cold_start_s']:.2f} s",
                    "met": row["cold_start_s"] <= COLD_START_TARGET_S,
                }
            )
            targets.append(
                {
                    "target": f"RSS after loading iris <= {RSS_TARGET_MB} MB",
                    "measured": f"{row['rss_mb']:.0f} MB",
                    "met": row["rss_mb"] <= RSS_TARGET_MB,
                }
            )
    return targets


# --- output files ---------------------------------------------------------


def _fmt(value, digits=0, suffix=""):
    return "n/a" if value is None else f"{value:,.{digits}f}{suffix}"


def one_line(text: str, limit: int = 160) -> str:
    """A reason squeezed into one markdown-table-safe line."""
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_markdown(report: dict) -> str:
    meta = report["meta"]
    settings = meta["settings"]
    lines = [
        f"Measured {meta['date']} on {meta['machine']['description']}; "
        f"wrk -t1 -c16 -d{settings['duration_s']}s (REST), h2load -c16 -m1 -D {settings['duration_s']} (gRPC), "
        f"{settings['warmup_s']} s warm-up before each run, median of {settings['rounds']} alternating rounds, "
        "one server running at a time. This server at commit "
        f"{meta['versions']['model-server']}{' with ' + meta['server_args'] if meta['server_args'] else ''}.",
        "",
        "| model | protocol | rows/request | server | req/s | rows/s | p50 ms | p99 ms "
        "| req/s vs KServe | p99 vs KServe (KServe ÷ ours) | valid |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    vs_kserve = {(r["model"], r["protocol"], r["rows"]): r for r in report["ratios"] if r["baseline"] == KSERVE}
    for row in report["load"]:
        ratio = vs_kserve.get((row["model"], row["protocol"], row["rows"])) if row["server"] == OURS else None
        lines.append(
            f"| {row['model']} | {row['protocol']} | {row['rows']} | {SERVER_LABELS.get(row['server'], row['server'])} "
            f"| {_fmt(row['req_per_s'])} | {_fmt(row['rows_per_s'])} "
            f"| {_fmt(row['p50_ms'], 2)} | {_fmt(row['p99_ms'], 2)} "
            f"| {_fmt(ratio['throughput_x'], 1, 'x') if ratio else ''} "
            f"| {_fmt(ratio['p99_x'], 1, 'x') if ratio else ''} "
            f"| {'yes' if row['valid'] else 'INVALID: ' + one_line('; '.join(row['invalid_reasons']))} |"
        )
    lines += [
        "",
        "| model | server | cold start to ready (s) | RSS after load (MB) | PSS (MB) | processes |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in report["startup"]:
        lines.append(
            f"| {row['model']} | {SERVER_LABELS.get(row['server'], row['server'])} "
            f"| {_fmt(row['cold_start_s'], 2)} | {_fmt(row['rss_mb'])} | {_fmt(row['pss_mb'])} "
            f"| {row['processes']} |"
        )
    if report["targets"]:
        lines += ["", "| target (issue 6) | measured | met |", "|---|---|---|"]
        for target in report["targets"]:
            lines.append(f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def _bar_label(value: float) -> str:
    if not value:
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def render_chart(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scenarios = list(dict.fromkeys((r["model"], r["protocol"], r["rows"]) for r in report["load"]))  # table order
    servers = [s for s in (OURS, KSERVE, MLSERVER) if any(r["server"] == s for r in report["load"])]
    by_key = _by_scenario(report["load"])
    labels = [f"{m}\n{p}\n{n} row{'s' if n > 1 else ''}" for m, p, n in scenarios]
    width = 0.8 / len(servers)
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.3 * len(scenarios)), 8), sharex=True)
    # Log axes with a fixed floor, so bar heights compare across scenarios.
    for axis, metric, floor, title in (
        (axes[0], "req_per_s", 10, "requests/s (higher is better)"),
        (axes[1], "p99_ms", 0.1, "p99 latency, ms (lower is better)"),
    ):
        for index, server in enumerate(servers):
            rows = [by_key.get((*scenario, server)) for scenario in scenarios]
            values = [r[metric] if r and r["valid"] else 0 for r in rows]
            bar_labels = [
                "invalid" if r and not r["valid"] else _bar_label(v) for r, v in zip(rows, values, strict=True)
            ]
            positions = [i + (index - (len(servers) - 1) / 2) * width for i in range(len(scenarios))]
            # an invalid row gets an invisible bar at the floor, only to carry its label
            bars = axis.bar(positions, [v or floor for v in values], width, bottom=0, label=SERVER_LABELS[server])
            axis.bar_label(bars, labels=bar_labels, fontsize=6, rotation=90, padding=2)
        axis.set_yscale("log")
        axis.set_ylim(bottom=floor, top=axis.get_ylim()[1] * 3)
        axis.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    axes[0].legend()
    axes[1].set_xticks(range(len(scenarios)), labels, fontsize=8)
    fig.suptitle(
        f"model-server benchmark, {report['meta']['date']}, {report['meta']['machine']['description']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(report: dict, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "latest.json", "markdown": out_dir / "latest.md", "chart": out_dir / "latest.png"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(render_markdown(report))
    render_chart(report, paths["chart"])
    return paths


def publish(result: dict, markdown: str, stem: Path, section: str, update: bool) -> None:
    """STEM.json and STEM.md, the table printed, and into the README's SECTION if asked."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    print(markdown)
    if update:
        update_readme(Path(__file__).parent / "README.md", markdown, section)


def update_readme(readme: Path, markdown: str, section: str = "benchmark results") -> None:
    """Replace the results between the README's markers of `section` with `markdown`."""
    start, end = f"<!-- {section}: start -->", f"<!-- {section}: end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{readme} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    readme.write_text(f"{head}{start}\n{markdown}{end}{tail}")
