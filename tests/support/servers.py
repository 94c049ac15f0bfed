"""The real server as a test sees it: `python -m model_server` started on free ports, and waits."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from .tools import REPO

# Lets a server process unpickle the estimators of tests/support (tests.support.estimators), as a
# user's own estimator module would be imported.
SUPPORT_ENV = {"PYTHONPATH": str(REPO)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServedModel:
    http_url: str
    grpc_target: str
    model_name: str
    model_dir: Path
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def start_server(
    model_dir,
    model_name: str = "iris",
    *extra_args: str,
    env: dict | None = None,
    timeout: float = 60,
    tls_verify=None,
    edge: bool = False,
):
    """Run the server (the edge runtime with ``edge``) until the block ends; wait until
    /v2/health/ready answers 200. ``tls_verify``: an ssl.SSLContext the readiness check uses, and
    the URL is https (the server given --tls_cert in ``extra_args``)."""
    http_port, grpc_port = free_port(), free_port()
    log_path = Path(tempfile.mkstemp(prefix="model-server-", suffix=".log")[1])
    module = "model_server.edge" if edge else "model_server"
    ports = [f"--http_port={http_port}"] if edge else [f"--http_port={http_port}", f"--grpc_port={grpc_port}"]
    command = [
        sys.executable,
        "-m",
        module,
        f"--model_name={model_name}",
        f"--model_dir={model_dir}",
        *ports,
        *extra_args,
    ]
    with open(log_path, "wb") as log:
        # No drain unless a test asks for one: every test's server would wait drain_seconds to stop.
        environment = {**os.environ, "MODEL_SERVER_DRAIN_SECONDS": "0", **(env or {})}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    scheme = "http" if tls_verify is None else "https"
    served = ServedModel(
        f"{scheme}://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", model_name, Path(model_dir), process, log_path
    )
    try:
        wait_until_ready(
            served.http_url,
            lambda: process.poll() is not None and f"server exited with {process.returncode}",
            served.log,
            timeout,
            verify=True if tls_verify is None else tls_verify,
        )
        yield served
    finally:
        stop(process)


def stop(process: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if the process has not ended within GRACE seconds."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until_ready(http_url: str, stopped, log, timeout: float, path: str = "/v2/health/ready", verify=True) -> None:
    """Poll ``path`` until 200 (``verify``: httpx's, for https); fail with the log if stopped() says
    why it ended, or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reason = stopped()
        if reason:
            raise RuntimeError(f"{reason}:\n{log()[-4000:]}")
        try:
            if httpx.get(f"{http_url}{path}", timeout=2, verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log()[-4000:]}")
