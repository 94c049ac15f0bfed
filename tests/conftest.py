"""Shared fixtures: the real server, started as `python -m model_server` on free ports."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


def project_tool(name: str, how: str = "`make tools` (scripts/install-tools.sh) puts it into .tools/bin") -> str:
    """A tool from .tools/bin or PATH; if absent, skips the test saying how to get it (see missing_tool)."""
    local = REPO / ".tools" / "bin" / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        missing_tool(f"{name} is not installed: {how}, or put {name} on PATH")
    return found


def missing_tool(reason: str) -> None:
    """Skip, naming what is missing and how to get it; with MODEL_SERVER_REQUIRE_TOOLS=1 (CI) fail instead."""
    if os.environ.get("MODEL_SERVER_REQUIRE_TOOLS") == "1":
        pytest.fail(f"MODEL_SERVER_REQUIRE_TOOLS=1 but {reason}")
    pytest.skip(reason)


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
def start_server(model_dir, model_name: str = "iris", *extra_args: str, env: dict | None = None, timeout: float = 60):
    """Run the server until the block ends; wait until /v2/health/ready answers 200."""
    http_port, grpc_port = free_port(), free_port()
    log_path = Path(tempfile.mkstemp(prefix="model-server-", suffix=".log")[1])
    command = [
        sys.executable,
        "-m",
        "model_server",
        f"--model_name={model_name}",
        f"--model_dir={model_dir}",
        f"--http_port={http_port}",
        f"--grpc_port={grpc_port}",
        *extra_args,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    served = ServedModel(
        f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", model_name, Path(model_dir), process, log_path
    )
    try:
        wait_until_ready(
            served.http_url,
            lambda: process.poll() is not None and f"server exited with {process.returncode}",
            served.log,
            timeout,
        )
        yield served
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_ready(http_url: str, stopped, log, timeout: float) -> None:
    """Poll /v2/health/ready until 200; fail with the log if stopped() says why it ended, or on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reason = stopped()
        if reason:
            raise RuntimeError(f"{reason}:\n{log()[-4000:]}")
        try:
            if httpx.get(f"{http_url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout}s:\n{log()[-4000:]}")


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    from model_server.demo import write_demo_model

    return write_demo_model(tmp_path_factory.mktemp("iris"))


@pytest.fixture(scope="session")
def served_model(demo_model_dir):
    with start_server(demo_model_dir, "iris") as served:
        yield served
