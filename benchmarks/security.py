"""What TLS and authentication cost: iris, single row, V2 REST and V2 gRPC, side by side in one run.

    python -m benchmarks.security            # make bench-security (part of make bench)
    python -m benchmarks.security --quick    # 1 s runs, 1 round

Three launches of this server, alternated round by round: plain text, TLS (--tls_cert, a
certificate made here), and plain text with --auth api_key (each request carries X-API-Key).
Load is the main benchmark's: wrk -t1 -c16 (REST) and h2load -c16 -m1 (gRPC), both on kept-alive
connections, so the TLS figure is the cost per request of encryption, not of handshakes. Targets:
TLS >= 0.85x the plain-text req/s, API keys >= 0.95x. The handshake is timed apart: TCP connect
plus a full TLS handshake (ECDHE P-256, no resumption), one connection at a time, against TCP
connect alone.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np

from benchmarks import loadgen, report
from benchmarks.run import provenance
from benchmarks.servers import REPO_ROOT, RunningServer, ServerStartError, this_server
from benchmarks.workloads import GRPC_INFER_PATH, build_iris, grpc_frame, grpc_request, v2_body
from model_server.core.auth import hash_api_key

SECTION = "security results"
API_KEY = "bench-key"
TARGETS = {"tls": 0.85, "api_key": 0.95}


class SecuredServer(RunningServer):
    """This server with TLS or an API key: readiness checked over https, with the key."""

    def __init__(self, variant: str, extra_args: tuple[str, ...], model, workdir: Path, ca: str | None):
        super().__init__(this_server(extra_args), model, workdir)
        self.variant, self.ca = variant, ca

    @property
    def http_url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.grpc_port}"

    def headers(self) -> tuple[str, ...]:
        return (f"x-api-key: {API_KEY}",) if self.variant == "api_key" else ()

    def _wait_ready(self, started: float) -> None:
        context = ssl.create_default_context(cafile=self.ca) if self.ca else None
        if context:
            context.check_hostname = False  # the certificate names localhost; readiness goes to 127.0.0.1
        while time.monotonic() - started < 60:
            if self.process.poll() is not None:
                raise ServerStartError(f"{self.variant} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1, context=context) as answer:
                    if answer.status == 200:
                        self.cold_start_s = time.monotonic() - started
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerStartError(f"{self.variant} not ready after 60 s:\n{self.log_tail()}")

    def grpc_response_bytes(self, request: bytes) -> int:
        """One real call (the answer's framed size is what h2load's byte count is checked against)."""
        if self.ca:
            credentials = grpc.ssl_channel_credentials(Path(self.ca).read_bytes())
            channel = grpc.secure_channel(
                f"localhost:{self.grpc_port}", credentials, options=[("grpc.ssl_target_name_override", "localhost")]
            )
        else:
            channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        metadata = [tuple(h.split(": ", 1)) for h in self.headers()]
        with channel:
            raw = channel.unary_unary(GRPC_INFER_PATH)(request, timeout=30, metadata=metadata, wait_for_ready=True)
        return len(grpc_frame(raw))


def certificate(directory: Path) -> tuple[str, str, str]:
    """A CA and a server certificate for localhost and 127.0.0.1 (ECDSA P-256), as PEM files."""
    from tests.support.certificates import Authority

    authority = Authority(directory)
    issued = authority.issue("server")
    return str(authority.path), str(issued.cert), str(issued.key)


def handshake_ms(port: int, ca: str, count: int) -> dict:
    """Median and p99 of TCP connect + TLS handshake, and of TCP connect alone, in ms."""
    context = ssl.create_default_context(cafile=ca)
    tls, tcp = [], []
    for _ in range(count):
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as raw:
            connected = time.perf_counter()
            with context.wrap_socket(raw, server_hostname="localhost"):
                done = time.perf_counter()
        tcp.append((connected - started) * 1000)
        tls.append((done - started) * 1000)
    return {
        "connections": count,
        "tls_p50_ms": statistics.median(tls),
        "tls_p99_ms": float(np.percentile(tls, 99)),
        "tcp_p50_ms": statistics.median(tcp),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.security", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s runs, 1 round (a check that it works)")
    parser.add_argument("--duration", type=int, default=5, help="seconds of each measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results")
    parser.add_argument("--update-readme", action="store_true", help="also put the table into benchmarks/README.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 1, 1, 1
    if loadgen.missing_tools():
        raise SystemExit(f"needs {', '.join(loadgen.missing_tools())} (apt-get install wrk nghttp2-client)")
    runs: dict[str, dict[str, list]] = {v: {"v2-rest": [], "v2-grpc": []} for v in ("plain", "tls", "api_key")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_iris(tmp / "models")
        ca, cert, key = certificate(tmp / "pki")
        keys = tmp / "api-keys"
        keys.write_text(f"{hash_api_key(API_KEY)} bench\n")
        variants = {
            "plain": ((), None),
            "tls": ((f"--tls_cert={cert}", f"--tls_key={key}"), ca),
            "api_key": (("--auth=api_key", f"--auth_api_keys_file={keys}"), None),
        }
        rows = np.array([[5.1, 3.5, 1.4, 0.2]])
        body, frame = v2_body(rows), grpc_frame(grpc_request(model.name, rows).SerializeToString())
        handshake = None
        for round_ in range(args.rounds):
            for variant, (extra, variant_ca) in variants.items():
                server = SecuredServer(variant, extra, model, tmp / f"{variant}-{round_}", variant_ca)
                server.start()
                try:
                    url = f"{server.http_url}/v2/models/{model.name}/infer"
                    loadgen.run_wrk(url, body, args.warmup, headers=server.headers())
                    runs[variant]["v2-rest"].append(loadgen.run_wrk(url, body, args.duration, headers=server.headers()))
                    response_bytes = server.grpc_response_bytes(frame[5:])
                    grpc_url = server.grpc_url + GRPC_INFER_PATH
                    loadgen.run_h2load(grpc_url, frame, response_bytes, args.warmup, headers=server.headers())
                    runs[variant]["v2-grpc"].append(
                        loadgen.run_h2load(grpc_url, frame, response_bytes, args.duration, headers=server.headers())
                    )
                    if variant == "tls" and handshake is None:
                        handshake = handshake_ms(server.http_port, ca, 50 if args.quick else 300)
                finally:
                    server.stop()
    result = {**provenance(), "rounds": args.rounds, "duration_s": args.duration, "handshake": handshake, "rows": []}
    for protocol in ("v2-rest", "v2-grpc"):
        plain = statistics.median(r.req_per_s for r in runs["plain"][protocol])
        for variant in ("plain", "tls", "api_key"):
            measured = runs[variant][protocol]
            invalid = "; ".join(r.invalid_reason for r in measured if r.invalid_reason) or None
            req_per_s = statistics.median(r.req_per_s for r in measured)
            ratio = req_per_s / plain if plain else 0.0
            target = TARGETS.get(variant)
            result["rows"].append(
                {
                    "protocol": protocol,
                    "variant": variant,
                    "req_per_s": req_per_s,
                    "p50_ms": statistics.median(r.p50_ms for r in measured),
                    "p99_ms": statistics.median(r.p99_ms for r in measured),
                    "ratio": ratio,
                    "target": target,
                    "met": None if target is None else (invalid is None and ratio >= target),
                    "invalid_reason": invalid,
                }
            )
    report.publish(result, render(result), args.out / "security", SECTION, args.update_readme)


TITLES = {"plain": "plain text", "tls": "TLS", "api_key": "API key (plain text)"}


def render(result: dict) -> str:
    lines = [
        f"Measured {result['date']} on {result['machine']}; this server at commit {result['commit']}; iris, one "
        f"row per request, wrk -t1 -c16 (REST) and h2load -c16 -m1 (gRPC) on kept-alive connections, "
        f"{result['duration_s']:g} s runs, median of {result['rounds']} alternating rounds.",
        "",
        "| protocol | server | req/s | p50 ms | p99 ms | vs plain text | target | met | failed responses |",
        "|---|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in result["rows"]:
        target = f">= {row['target']:.2f}x" if row["target"] else ""
        met = "" if row["met"] is None else ("yes" if row["met"] else "NO")
        cells = (
            row["protocol"],
            TITLES[row["variant"]],
            f"{row['req_per_s']:,.0f}",
            f"{row['p50_ms']:.2f}",
            f"{row['p99_ms']:.2f}",
            f"{row['ratio']:.2f}x",
            target,
            met,
            row["invalid_reason"] or "none",
        )
        lines.append("| " + " | ".join(cells) + " |")
    shake = result["handshake"]
    if shake:
        lines += [
            "",
            f"TLS handshake (TCP connect + full TLS 1.3 handshake, ECDHE P-256, one connection at a time, "
            f"{shake['connections']} connections): p50 {shake['tls_p50_ms']:.2f} ms, p99 {shake['tls_p99_ms']:.2f} ms; "
            f"TCP connect alone p50 {shake['tcp_p50_ms']:.3f} ms.",
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
