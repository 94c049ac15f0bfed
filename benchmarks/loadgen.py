"""Runs the load generators (wrk for REST, h2load for gRPC) against 127.0.0.1 and
turns their output into one LoadResult. A run that saw any failed response is
marked invalid, so an erroring server never counts as fast."""

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

CONNECTIONS = 16  # 16 concurrent requests in flight for every server and protocol
POST_SCRIPT = Path(__file__).with_name("post.lua")
WRK_TIMEOUT = "10s"  # a request slower than this counts as a socket error
EXIT_GRACE_S = 30  # a load run is killed if it outlives its duration by this much


@dataclass
class LoadResult:
    req_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    invalid_reason: str | None = None  # None when every response was a success

    @property
    def valid(self) -> bool:
        return self.invalid_reason is None

    def to_json(self) -> dict:
        return {**asdict(self), "valid": self.valid}


def missing_tools() -> list[str]:
    return [tool for tool in ("wrk", "h2load") if shutil.which(tool) is None]


def tool_versions() -> dict:
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0]
    h2load = subprocess.run(["h2load", "--version"], capture_output=True, text=True).stdout.strip()
    return {"wrk": wrk.split(" [")[0], "h2load": h2load}


def _run(cmd: list[str], duration_s: float, preexec_fn) -> str:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=duration_s + EXIT_GRACE_S, preexec_fn=preexec_fn
        )
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{cmd[0]} did not finish within {duration_s + EXIT_GRACE_S}s") from error
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def run_wrk(
    url: str,
    body: bytes,
    duration_s: float,
    preexec_fn=None,
    header_length: int | None = None,
    headers: tuple[str, ...] = (),
) -> LoadResult:
    """POST `body` to `url` with wrk -t1 -c16 for `duration_s` seconds; `header_length`: the
    body is a V2 binary-extension request whose JSON header is that long; `headers`: "Name: value"
    each, sent with every request (https URLs: wrk's TLS, on kept-alive connections)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
        body_file.write(body)
        body_file.flush()
        out = _run(
            [
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{duration_s}s",
                f"--timeout={WRK_TIMEOUT}",
                "-s",
                str(POST_SCRIPT),
                url,
                "--",
                body_file.name,
                *([str(header_length)] if header_length is not None else []),
                *headers,
            ],
            duration_s,
            preexec_fn,
        )
    match = re.search(r"^WRK_RESULT (\{.*\})$", out, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no result line:\n{out[-1000:]}")
    stats = json.loads(match.group(1))
    problems = []
    if stats["not_2xx"]:
        problems.append(f"{stats['not_2xx']} non-2xx responses")
    if stats["socket_errors"]:
        problems.append(f"{stats['socket_errors']} socket errors/timeouts")
    if not stats["requests"]:
        problems.append("no request completed")
    return LoadResult(
        req_per_s=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        requests=stats["requests"],
        invalid_reason="; ".join(problems) or None,
    )


def run_h2load(
    url: str,
    frame: bytes,
    response_frame_bytes: int,
    duration_s: float,
    preexec_fn=None,
    headers: tuple[str, ...] = (),
) -> LoadResult:
    """Send the gRPC `frame` to `url` over h2c (https URLs: TLS, h2 by ALPN) with h2load -c16 -m1
    for `duration_s` seconds; `headers`: "name: value" each, sent with every request.

    A gRPC failure still has HTTP status 200; it differs from a success by
    carrying no response message (grpc-status is in the trailers, which h2load
    does not expose). Every success carries the same message, whose framed size
    the caller measured beforehand, so the DATA byte count must equal
    succeeded x response_frame_bytes exactly.
    """
    with tempfile.TemporaryDirectory() as tmp:
        body_path, log_path = Path(tmp, "request.bin"), Path(tmp, "requests.tsv")
        body_path.write_bytes(frame)
        out = _run(
            [
                "h2load",
                f"-c{CONNECTIONS}",
                "-m1",
                "-t1",
                "-D",
                str(duration_s),
                "-d",
                str(body_path),
                "-H",
                "content-type: application/grpc",
                "-H",
                "te: trailers",
                *[arg for header in headers for arg in ("-H", header)],
                f"--log-file={log_path}",
                url,
            ],
            duration_s,
            preexec_fn,
        )
        # per-request log columns: start time (us since epoch), HTTP status, duration (us)
        log = np.loadtxt(log_path, dtype=np.int64, ndmin=2) if log_path.stat().st_size else np.empty((0, 3))
    counts = dict(
        re.search(
            r"requests: (?P<total>\d+) total, \d+ started, (?P<done>\d+) done, "
            r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, "
            r"(?P<timeout>\d+) timeout",
            out,
        ).groupdict()
    )
    counts = {key: int(value) for key, value in counts.items()}
    req_per_s = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    data_bytes = int(re.search(r"\((\d+)\) data", out).group(1))
    problems = []
    not_2xx = int(np.count_nonzero((log[:, 1] < 200) | (log[:, 1] > 299))) if len(log) else 0
    if not_2xx:
        problems.append(f"{not_2xx} non-2xx responses")
    for key in ("failed", "errored", "timeout"):
        if counts[key]:
            problems.append(f"{counts[key]} {key}")
    if not counts["succeeded"]:
        problems.append("no request succeeded")
    elif data_bytes != counts["succeeded"] * response_frame_bytes:
        problems.append(
            f"response DATA {data_bytes} B != {counts['succeeded']} x {response_frame_bytes} B: "
            "some responses carried no message (grpc-status != 0)"
        )
    durations_ms = log[:, 2] / 1000 if len(log) else np.array([0.0])
    return LoadResult(
        req_per_s=req_per_s,
        p50_ms=float(np.percentile(durations_ms, 50)),
        p99_ms=float(np.percentile(durations_ms, 99)),
        requests=counts["succeeded"],
        invalid_reason="; ".join(problems) or None,
    )
