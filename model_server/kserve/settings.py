"""The KServe front end's settings: every HTTP listener's (``HttpSettings``), gRPC's, the
repository API's, and the KServe ``ModelServer`` settings passed on to it."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SettingsError
from ..core.settings import boolean, optional, setting
from ..http.settings import HttpSettings
from .workers import workers_count


@dataclass(frozen=True)
class ServerSettings(HttpSettings):
    grpc_port: int = setting(8081, "V2 gRPC port.", int, minimum=0)
    enable_grpc: bool = setting(True, "Serve V2 gRPC on --grpc_port.", boolean)
    repository_api: bool | None = setting(
        None,
        "Serve the model repository API (POST /v2/repository/index, /v2/repository/models/{name}/load "
        "and /unload, their gRPC twins). Off: they answer 404 / UNIMPLEMENTED saying how to enable "
        "them. Default: on with --model_repository, off otherwise.",
        optional(boolean),
    )
    watch: bool = setting(
        False,
        "Look for new versions and changed model files every --watch_interval_seconds and load them "
        "without failing a request (the old version serves until the new one passed its check).",
        boolean,
    )
    watch_interval_seconds: float = setting(
        2.0, "How often --watch looks at the model directories.", float, minimum=0.1
    )
    management_token: str | None = setting(
        None,
        "Bearer token the repository API requires (Authorization: Bearer TOKEN; 401 without it). "
        "Prefer the variable, or --management_token_file, to a flag visible in the process list.",
        optional(str),
    )
    management_token_file: str | None = setting(
        None, "File holding the management token (a mounted Kubernetes Secret, say).", optional(str)
    )
    enable_latency_logging: bool = setting(
        False,
        "KServe's log line per request with its latency (KServe's default is on; the same figures are in "
        "the Prometheus histograms).",
        boolean,
    )
    workers: int = setting(
        1,
        "Serving processes, or auto (the container's CPU limit, from its cgroup's cpu.max). More than 1: "
        "the models load once, then the workers are forked and share their memory; every worker "
        "serves REST and gRPC on the same ports and a supervisor replaces a worker that dies. With "
        "--repository_api or --watch the supervisor loads new models and versions (at low priority), "
        "then replaces the workers one at a time with fresh ones that serve them.",
        workers_count,
        minimum=1,
    )
    max_threads: int = setting(4, "gRPC server threads.", int, minimum=1)
    max_asyncio_workers: int | None = setting(
        None, "Threads of the event loop's default executor (KServe's default: min(32, CPUs + 4)).", optional(int)
    )
    enable_docs_url: bool = setting(False, "Serve the Swagger UI at /docs.", boolean)
    access_log_format: str | None = setting(
        None, "KServe's asgi-logger access log format (needs the asgi-logger package).", optional(str)
    )
    event_loop: str = setting(
        "auto",
        "Event loop: uvloop when installed (auto), or asyncio.",
        flag="--event-loop",
        choices=("auto", "asyncio", "uvloop"),
    )
    timeout_keep_alive: int = setting(
        65,
        "Seconds an idle keep-alive connection stays open; keep it above the proxy's idle timeout.",
        int,
        flag="--timeout-keep-alive",
        minimum=0,
    )
    ssl_certfile: str | None = setting(
        os.environ.get("KSERVE_TLS_CERT_FILE"),
        "KServe's name for --tls_cert (default: $KSERVE_TLS_CERT_FILE), used with --ssl_keyfile when "
        "--tls_cert is not given; as in KServe, it moves the default --http_port 8080 to 8443.",
        optional(str),
    )
    ssl_keyfile: str | None = setting(
        os.environ.get("KSERVE_TLS_KEY_FILE"),
        "KServe's name for --tls_key (default: $KSERVE_TLS_KEY_FILE), used when --tls_key is not given.",
        optional(str),
    )
    configure_logging: bool = setting(True, "Set up KServe's log format and level (KSERVE_LOGLEVEL).", boolean)
    log_config_file: str | None = setting(None, "Uvicorn/KServe log configuration (YAML or JSON).", optional(str))
    grpc_max_send_message_length: int = setting(8 * 1024 * 1024, "Largest gRPC message sent, in bytes.", int, minimum=1)
    grpc_max_receive_message_length: int = setting(
        8 * 1024 * 1024, "Largest gRPC message received, in bytes.", int, minimum=1
    )

    @property
    def tls_files(self) -> tuple[str | None, str | None]:
        """--tls_cert / --tls_key, else KServe's --ssl_certfile / --ssl_keyfile (KSERVE_TLS_*_FILE),
        which, as in KServe, serve TLS only when both are set."""
        if self.tls_cert:
            return self.tls_cert, self.tls_key
        if self.ssl_certfile and self.ssl_keyfile:
            return self.ssl_certfile, self.ssl_keyfile
        return None, None

    @property
    def https_port(self) -> int:
        """KServe's rule: TLS from its own settings on the default port 8080 listens on 8443."""
        if not self.tls_cert and self.ssl_certfile and self.ssl_keyfile and self.http_port == 8080:
            return 8443
        return self.http_port

    @property
    def repository_api_enabled(self) -> bool:
        return self.repository_api if self.repository_api is not None else self.model_repository is not None

    @functools.cached_property
    def bearer_token(self) -> str | None:
        """The repository API's token: --management_token, or the contents of --management_token_file."""
        if not self.management_token_file:
            return self.management_token
        try:
            return Path(self.management_token_file).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"--management_token_file {self.management_token_file}: {exc.strerror}") from None

    def check(self) -> None:
        super().check()
        if self.management_token and self.management_token_file:
            raise SettingsError("give --management_token or --management_token_file, not both")
        if not self.bearer_token and self.management_token_file:
            raise SettingsError(f"--management_token_file {self.management_token_file} is empty")
