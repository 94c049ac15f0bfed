"""Driving a container engine from the tests: the engine CLI, the built image, and running
containers of it that publish 8080/8081 on free loopback ports."""

from __future__ import annotations

import os
import subprocess
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import wait_until_ready

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGE = REPO / "scripts" / "build-image.sh"
TEST_TAG = "localhost/model-server:test"
# Built by scripts/prepare-podman.sh where no registry can be reached (CI); preferred when present.
LOCAL_BASE_IMAGE = "localhost/debian-python:bookworm"
# This machine's Podman may not raise limits above the host's; these values work on any engine.
RUN_LIMITS = ("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000")


class Engine:
    """The container engine CLI, with the global flags build-image.sh uses for it."""

    def __init__(self, command: list[str]):
        self.command = command

    def run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(self.command)} {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
            )
        return result

    def __call__(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout.strip()


@dataclass
class Image:
    tag: str
    base_image: str
    build_output: str


@dataclass
class Container:
    engine: Engine
    name: str
    http_url: str
    grpc_target: str

    def logs(self) -> str:
        result = self.engine.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_ready(self, timeout: float = 90) -> None:
        def stopped():
            running = self.engine("inspect", "--format", "{{.State.Running}}", self.name) == "true"
            return not running and f"container {self.name} exited"

        wait_until_ready(self.http_url, stopped, self.logs, timeout)


def write_demo_model(engine: Engine, image: Image, directory: Path, *demo_args: str) -> Path:
    """A demo model written into ``directory`` by the image's own scikit-learn, as the engine's user
    (so any host can read it)."""
    engine(
        "run",
        "--rm",
        *RUN_LIMITS,
        "--user",
        f"{os.getuid()}:{os.getgid()}",
        "--volume",
        f"{directory}:/out",
        "--entrypoint",
        "/opt/venv/bin/python",
        image.tag,
        "-m",
        "model_server.demo",
        "/out",
        *demo_args,
    )
    return directory


@contextmanager
def running_container(
    engine: Engine, image: Image, *server_args: str, run_args: tuple[str, ...] = (), http_port: int = 8080
):
    """A read-only container (only /tmp writable, as on KServe with readOnlyRootFilesystem) of the
    image, ready to serve; removed when the block ends. ``http_port``: the port the server listens
    on inside (published with 8081)."""
    name = f"model-server-test-{uuid.uuid4().hex[:10]}"
    engine(
        "run",
        "--detach",
        "--name",
        name,
        "--read-only",
        "--tmpfs",
        "/tmp",
        *RUN_LIMITS,
        "--publish",
        f"127.0.0.1::{http_port}",
        "--publish",
        "127.0.0.1::8081",
        *run_args,
        image.tag,
        *server_args,
    )
    try:
        http_url = f"http://{_host_port(engine, name, http_port)}"
        container = Container(engine, name, http_url, _host_port(engine, name, 8081))
        container.wait_ready()
        yield container
    finally:
        engine.run("rm", "--force", name, check=False)


def _host_port(engine: Engine, name: str, port: int) -> str:
    # `port` prints one "127.0.0.1:PORT" line per host binding; we publish on loopback only.
    return engine("port", name, f"{port}/tcp").splitlines()[0]
