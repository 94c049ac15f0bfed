"""The servers under test: how each is launched, when it counts as ready, how
much memory its whole process tree holds, and how it is stopped."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.workloads import PROTOCOLS, V2_GRPC, V2_REST, BenchModel

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 90
READY_POLL_S = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerKind:
    key: str
    title: str
    protocols: tuple[str, ...]
    # (model, http_port, grpc_port, workdir) -> argv; workdir is private to one launch
    command: Callable[[BenchModel, int, int, Path], list[str]]
    ready_path: str | None = None  # answers 200 once ready; default /v2/models/NAME/ready


def this_server(extra_args: tuple[str, ...] = ()) -> ServerKind:
    def command(model, http_port, grpc_port, workdir):
        return [
            sys.executable,
            "-m",
            "model_server",
            "--model_name",
            model.name,
            "--model_dir",
            str(model.model_dir),
            "--http_port",
            str(http_port),
            "--grpc_port",
            str(grpc_port),
            *extra_args,
        ]

    return ServerKind("model-server", "this server", PROTOCOLS, command)


def _kserve_command(model, http_port, grpc_port, workdir):
    return [
        sys.executable,
        "-m",
        "benchmarks.kserve_sklearn_baseline",
        "--model_name",
        model.name,
        "--model_dir",
        str(model.model_dir),
        "--http_port",
        str(http_port),
        "--grpc_port",
        str(grpc_port),
    ]


KSERVE = ServerKind("kserve", "KServe 0.21 ModelServer (sklearnserver-equivalent)", PROTOCOLS, _kserve_command)


def mlserver_start(mlserver_bin: Path, model, workdir: Path) -> list[str]:
    """MLServer's command for WORKDIR (its settings.json written already), with the model's
    model-settings.json beside it: mlserver-sklearn serving the pickle."""
    settings = {
        "name": model.name,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model.model_dir / "model.joblib")},
    }
    (workdir / "model-settings.json").write_text(json.dumps(settings))
    return [str(mlserver_bin), "start", str(workdir)]


def mlserver(mlserver_bin: Path) -> ServerKind:
    def command(model, http_port, grpc_port, workdir):
        # MLServer's stock settings, except ports: it reads settings.json and every
        # model-settings.json below the directory it is started on.
        (workdir / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": http_port,
                    "grpc_port": grpc_port,
                    "metrics_port": free_port(),
                }
            )
        )
        return mlserver_start(mlserver_bin, model, workdir)

    # MLServer has no V1 protocol.
    return ServerKind("mlserver", "MLServer 1.7 + mlserver-sklearn", (V2_REST, V2_GRPC), command)


def _process_tree(pid: int) -> list[int]:
    pids, index = [pid], 0
    while index < len(pids):
        for task in Path(f"/proc/{pids[index]}/task").glob("*"):
            with contextlib.suppress(OSError):  # the task exited meanwhile
                pids.extend(int(child) for child in (task / "children").read_text().split())
        index += 1
    return pids


def _proc_kib(pid: int, file: str, field: str) -> int:
    """A `field:  N kB` value from /proc/PID/FILE (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class ServerStartError(RuntimeError):
    pass


class RunningServer:
    """One launch of a server: start(), measure, then always stop()."""

    def __init__(self, kind: ServerKind, model: BenchModel, workdir: Path, cpus: set[int] | None = None):
        self.kind, self.model = kind, model
        self.workdir, self.log_path = workdir, workdir / "server.log"
        self.http_port, self.grpc_port = free_port(), free_port()
        self.cpus = cpus
        self.process = None
        self.cold_start_s = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = self.kind.command(self.model, self.http_port, self.grpc_port, self.workdir)
        cpus = self.cpus
        with open(self.log_path, "wb") as log:
            started = time.monotonic()
            self.process = subprocess.Popen(
                # the private workdir collects any files a server writes (MLServer: .metrics)
                argv,
                cwd=self.workdir,
                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group, so stop() reaches its workers too
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        self._wait_ready(started)

    def _wait_ready(self, started: float) -> None:
        url = self.http_url + (self.kind.ready_path or f"/v2/models/{self.model.name}/ready")
        while time.monotonic() - started < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise ServerStartError(f"{self.kind.key} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        self.cold_start_s = time.monotonic() - started
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(READY_POLL_S)
        raise ServerStartError(f"{self.kind.key} not ready after {READY_TIMEOUT_S}s:\n{self.log_tail()}")

    def memory(self) -> dict:
        """Memory of the server's whole process tree (workers included).

        RSS is summed per process, so pages shared between processes count more
        than once; PSS splits shared pages and so adds up to the real total.
        """
        pids = _process_tree(self.process.pid)
        return {
            "rss_mb": sum(_proc_kib(pid, "status", "VmRSS") for pid in pids) / 1024,
            "pss_mb": sum(_proc_kib(pid, "smaps_rollup", "Pss") for pid in pids) / 1024,
            "processes": len(pids),
        }

    @staticmethod
    def memory_of(pid: int) -> float:
        """RSS of one process, in MB."""
        return _proc_kib(pid, "status", "VmRSS") / 1024

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass  # already gone, or killed below
        with contextlib.suppress(ProcessLookupError):  # whatever is left of the group (e.g. a stuck worker)
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
