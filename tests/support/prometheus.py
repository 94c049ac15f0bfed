"""A real Prometheus server (Debian's `prometheus` package) scraping test servers every second."""

from __future__ import annotations

import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from .servers import free_port, stop
from .tools import missing_tool

SCRAPE_SECONDS = 1


@dataclass
class PrometheusServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, promql: str) -> list[dict]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if not found:
        missing_tool(
            "prometheus is not installed: `apt-get install prometheus` (Debian's package; .ci/run installs it)"
        )
    return found


@contextmanager
def start_prometheus(targets: dict[str, str], directory: Path, timeout: float = 30):
    """Prometheus on a free loopback port, scraping each target URL's /metrics as its own job."""
    port = free_port()
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [url.removeprefix("http://")]}]}
            for job, url in targets.items()
        ],
    }
    config_path = directory / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = directory / "prometheus.log"
    command = [
        prometheus_binary(),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = PrometheusServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + timeout
        while not _ready(server):
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {process.returncode}:\n{server.log()[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {timeout}s:\n{server.log()[-4000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop(process)


def _ready(server: PrometheusServer) -> bool:
    try:
        return httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
