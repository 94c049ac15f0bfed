"""One settings object per entry point, from flags and ``MODEL_SERVER_*`` environment variables.

Every field is a flag (``--max_batch_size``) and an environment variable of the same name in upper
case with a ``MODEL_SERVER_`` prefix (``MODEL_SERVER_MAX_BATCH_SIZE``), for the Helm chart and the
Dockerfile. A flag wins over the variable, the variable over the default. A value that cannot be
used (a variable that is not a number, a flag out of range) stops the program with a message
naming the flag or the variable, as argparse does (exit code 2).

``ModelSettings`` is what every front end needs to load and predict; ``ServerSettings`` adds the
online server's (ours and the KServe ``ModelServer`` settings we pass on).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SettingsError

ENV_PREFIX = "MODEL_SERVER_"


def boolean(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def optional(cast: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(value: str):
        return None if value in ("", "none", "None") else cast(value)

    convert.__name__ = cast.__name__
    return convert


def setting(default, help: str, cast: Callable[[str], Any] = str, flag: str | None = None, choices=None, minimum=None):
    """A settings field: its default, --help text, how a string becomes its value, and checks."""
    return dataclasses.field(
        default=default,
        metadata={"help": help, "cast": cast, "flag": flag, "choices": choices, "minimum": minimum},
    )


@dataclass(frozen=True)
class ModelSettings:
    model_name: str = setting("model", "Name the model is served under (KServe passes the InferenceService's).")
    model_dir: str = setting(
        "/mnt/models",
        "A model directory (the model file, metadata.json), or a versions directory (numbered "
        "subdirectories, each a model directory), served as --model_name. KServe's storage initializer "
        "puts it in /mnt/models.",
    )
    model_repository: str | None = setting(
        None,
        "Serve every subdirectory of this directory as a model of that name (each a model or versions "
        "directory); --model_dir and --model_name are then unused. KServe's multi-model serving "
        "(TrainedModel) downloads models into such a directory and loads them through the repository API.",
        optional(str),
    )
    version_policy: str = setting(
        "latest",
        "Which versions of a versions directory are served: latest, latest:N, all, or specific:1,3 "
        "(Triton's policies); the newest served is the default version.",
    )
    backend: str = setting(
        "auto",
        "What predicts. sklearn: the estimator's own methods. onnx: ONNX Runtime (pip install "
        "model-server[onnx]) for any classifier over numeric features that skl2onnx converts and that "
        "gives the same answers on a parity sample, else scikit-learn. auto: a logistic regression "
        "through LinearEngine, a scikit-learn ensemble through ONNX Runtime when it is installed, "
        "anything else through scikit-learn.",
        choices=("auto", "sklearn", "onnx"),
    )
    max_batch_size: int = setting(
        512,
        "Most rows predicted in one estimator call when concurrent requests are batched (a larger "
        "request runs alone, unsplit); 1 turns batching off.",
        int,
        minimum=1,
    )
    max_batch_wait_ms: float = setting(
        0.0,
        "How long the batcher waits for batch mates before predicting a batch smaller than "
        "--max_batch_size. 0: never wait (batches still form from requests that arrive while a "
        "prediction runs).",
        float,
        minimum=0,
    )
    require_sha256: bool = setting(
        False,
        "Refuse a pickled model (model.joblib, model.pkl, model.pickle, an MLflow model saved with pickle "
        "or cloudpickle) unless a sha256 in metadata.json (or MLmodel's metadata) matches it: loading a "
        "pickle runs any code it holds. Off: an unpinned pickle loads with a warning, as KServe's "
        "sklearnserver loads it. skops files need no pin (only trusted types are constructed).",
        boolean,
    )

    def predictor_options(self) -> dict:
        """What ``Predictor.load`` takes from these settings: the same for every front end."""
        return {
            "backend": self.backend,
            "max_batch_size": self.max_batch_size,
            "max_batch_wait_ms": self.max_batch_wait_ms,
            "require_sha256": self.require_sha256,
        }

    @classmethod
    def build_parser(cls, prog: str, description: str, parents: Sequence[argparse.ArgumentParser] = ()):
        parser = argparse.ArgumentParser(
            prog=prog,
            description=description,
            parents=list(parents),
            # Our definition of a flag that a parent (KServe's parser) also defines wins.
            conflict_handler="resolve",
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        )
        for action in parser._actions:  # a parent's flags that we accept and ignore: not in --help
            if action.dest != "help":
                action.help = argparse.SUPPRESS
        for field in dataclasses.fields(cls):
            meta = field.metadata
            # A boolean flag alone means true (--positional), as well as --positional=false.
            bare = {"nargs": "?", "const": True} if meta["cast"] is boolean else {}
            parser.add_argument(
                flag_of(field),
                dest=field.name,
                **bare,
                type=meta["cast"],
                default=field.default,
                choices=meta["choices"],
                help=f"{meta['help']} Env: {env_name(field.name)}.",
            )
        return parser

    @classmethod
    def from_args(
        cls,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] = os.environ,
        prog: str = "python -m model_server",
        description: str = "",
        parents: Sequence[argparse.ArgumentParser] = (),
    ):
        """Settings from ``argv`` (default: sys.argv) over ``environ`` over the defaults."""
        parser = cls.build_parser(prog, description, parents)
        try:
            parser.set_defaults(**_from_environment(cls, environ))
        except SettingsError as exc:
            parser.error(str(exc))
        args = parser.parse_args(argv)
        values = {field.name: getattr(args, field.name) for field in dataclasses.fields(cls)}
        try:
            settings = cls(**values)
            settings.check()
        except SettingsError as exc:
            parser.error(str(exc))
        return settings

    def check(self) -> None:
        """Raise SettingsError for a value out of range or a combination that cannot work."""
        for field in dataclasses.fields(self):
            minimum, value = field.metadata.get("minimum"), getattr(self, field.name)
            if minimum is not None and value is not None and value < minimum:
                raise SettingsError(f"{flag_of(field)} must be at least {minimum}, got {value}")
        from .repository import VersionPolicy

        VersionPolicy.parse(self.version_policy)


@dataclass(frozen=True)
class ServerSettings(ModelSettings):
    http_port: int = setting(8080, "HTTP port (V1 and V2 REST, health, metadata, /metrics).", int, minimum=0)
    grpc_port: int = setting(8081, "V2 gRPC port.", int, minimum=0)
    enable_grpc: bool = setting(True, "Serve V2 gRPC on --grpc_port.", boolean)
    max_request_bytes: int = setting(
        16 * 1024 * 1024, "Largest accepted HTTP request body; larger ones get 413.", int, minimum=1
    )
    max_request_rows: int = setting(
        100_000,
        "Most rows one request may carry (every protocol); more get 413. With --max_request_bytes it "
        "bounds what one request can cost in memory.",
        int,
        minimum=1,
    )
    max_header_bytes: int = setting(
        64 * 1024,
        "Largest HTTP request head (request line and headers); larger ones get 431 and the connection is closed.",
        int,
        minimum=1024,
    )
    header_timeout_seconds: float = setting(
        10.0,
        "A connection must send a whole request head within this many seconds of opening, or of "
        "starting a request, else it is closed (slow or silent clients hold no connection for long).",
        float,
        minimum=0.1,
    )
    drain_seconds: float = setting(
        5.0,
        "On SIGTERM, readiness answers not-ready at once and the server keeps serving this long, so "
        "that Kubernetes endpoints, kube-proxy and ingresses stop sending traffic before the listener "
        "closes; they take a few seconds to see a terminating pod.",
        float,
        minimum=0,
    )
    grace_seconds: float = setting(
        20.0,
        "After the drain: how long requests in flight may take to finish before the server stops.",
        float,
        minimum=0,
    )
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
    access_log: bool = setting(
        False,
        "Log one line per HTTP request (uvicorn's access log; KServe logs it always). Off by default: at "
        "thousands of requests per second it costs more than the request itself.",
        boolean,
    )
    enable_latency_logging: bool = setting(
        False,
        "KServe's log line per request with its latency (KServe's default is on; the same figures are in "
        "the Prometheus histograms).",
        boolean,
    )
    workers: int = setting(
        1,
        "Must be 1: KServe's multi-process mode would serve without this server's routes; run more "
        "replicas to use more cores.",
        int,
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
        "TLS certificate for HTTPS (default: $KSERVE_TLS_CERT_FILE).",
        optional(str),
    )
    ssl_keyfile: str | None = setting(
        os.environ.get("KSERVE_TLS_KEY_FILE"),
        "TLS private key for HTTPS (default: $KSERVE_TLS_KEY_FILE).",
        optional(str),
    )
    configure_logging: bool = setting(True, "Set up KServe's log format and level (KSERVE_LOGLEVEL).", boolean)
    log_config_file: str | None = setting(None, "Uvicorn/KServe log configuration (YAML or JSON).", optional(str))
    grpc_max_send_message_length: int = setting(8 * 1024 * 1024, "Largest gRPC message sent, in bytes.", int, minimum=1)
    grpc_max_receive_message_length: int = setting(
        8 * 1024 * 1024, "Largest gRPC message received, in bytes.", int, minimum=1
    )

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
        if self.workers != 1:
            # KServe's multi-process mode re-imports its app in spawned children, without the routes,
            # readiness and batching added here. Scale out with replicas (see the Helm chart) instead.
            raise SettingsError("--workers must be 1: run more replicas to use more cores")


def flag_of(field: dataclasses.Field) -> str:
    return field.metadata["flag"] or f"--{field.name}"


def env_name(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def _from_environment(cls, environ: Mapping[str, str]) -> dict[str, Any]:
    values = {}
    for field in dataclasses.fields(cls):
        raw = environ.get(env_name(field.name))
        if raw is None:
            continue
        try:
            value = field.metadata["cast"](raw)
        except ValueError as exc:
            raise SettingsError(f"{env_name(field.name)}={raw!r}: {exc}") from None
        choices = field.metadata["choices"]
        if choices and value not in choices:
            raise SettingsError(f"{env_name(field.name)}={raw!r}: expected one of {', '.join(choices)}")
        values[field.name] = value
    return values
