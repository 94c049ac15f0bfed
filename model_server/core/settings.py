"""One settings object per entry point, from flags and ``MODEL_SERVER_*`` environment variables.

Every field is a flag (``--max_batch_size``) and an environment variable of the same name in upper
case with a ``MODEL_SERVER_`` prefix (``MODEL_SERVER_MAX_BATCH_SIZE``), for the Helm chart and the
Dockerfile. A flag wins over the variable, the variable over the default. A value that cannot be
used (a variable that is not a number, a flag out of range) stops the program with a message
naming the flag or the variable, as argparse does (exit code 2).

``ModelSettings`` is what every front end needs to load and predict (and ``load_predictor``, the
one loader); each front end's ``settings.py`` adds its own fields (``http.settings.HttpSettings``
those of every HTTP listener).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .versions import VersionPolicy

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
    convert.cast = cast
    return convert


def is_boolean(cast: Callable[[str], Any]) -> bool:
    return getattr(cast, "cast", cast) is boolean


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
        "What predicts. sklearn: the estimator's own methods. onnx: ONNX Runtime (a default dependency) "
        "for any classifier over numeric features that skl2onnx converts and that "
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
    onnx_intra_op_threads: int = setting(
        1,
        "ONNX Runtime's threads within one operator, for a model.onnx (a framework's export, or one "
        "python -m model_server.export wrote): 1 per worker, as batches are small and threads would "
        "contend; more for a large graph (a convolutional network) on a pod with cores to spare.",
        int,
        minimum=1,
    )
    onnx_inter_op_threads: int = setting(
        1, "ONNX Runtime's threads across independent operators of an ONNX graph.", int, minimum=1
    )
    onnx_graph_optimization: str = setting(
        "all",
        "ONNX Runtime's graph optimization level at load: disable, basic, extended or all.",
        choices=("disable", "basic", "extended", "all"),
    )
    onnx_warmup: bool = setting(
        False,
        "Run a generic ONNX graph once at load on zeros of its declared shapes (dynamic dimensions 1), "
        "before the model is ready, so that the first request is not the slow one.",
        boolean,
    )
    onnx_cache_dir: str | None = setting(
        None,
        "Keep the ONNX graphs that --backend converts from pickles here (one file per model file's "
        "sha256), so that the next start reads the graph instead of converting again and needs no "
        "converter; a Kubernetes emptyDir or a PVC. Unset: convert at every start.",
        optional(str),
    )

    drift: bool = setting(
        True,
        "Monitor drift when the model directory has a profile.json (python -m model_server.profile): "
        "every served row binned against it, PSI gauges model_server_feature_drift and "
        "model_server_prediction_drift over the window (docs/monitoring.md). false: never.",
        boolean,
    )
    drift_window_rows: int = setting(10_000, "Drift window: the last this many rows served.", int, minimum=1)
    drift_window_seconds: float = setting(
        600.0, "Drift window: rows served at most this many seconds ago.", float, minimum=1
    )

    def onnx_session(self):
        """ONNX Runtime's session settings (``core.onnx.generic.SessionSettings``)."""
        from .onnx.generic import SessionSettings

        return SessionSettings(
            intra_op_threads=self.onnx_intra_op_threads,
            inter_op_threads=self.onnx_inter_op_threads,
            graph_optimization=self.onnx_graph_optimization,
            warmup=self.onnx_warmup,
        )

    def predictor_options(self) -> dict:
        """What ``Predictor.load`` takes from these settings: the same for every front end."""
        return {
            "backend": self.backend,
            "max_batch_size": self.max_batch_size,
            "max_batch_wait_ms": self.max_batch_wait_ms,
            "require_sha256": self.require_sha256,
            "onnx_cache_dir": self.onnx_cache_dir,
            "drift": self.drift,
            "drift_window_rows": self.drift_window_rows,
            "drift_window_seconds": self.drift_window_seconds,
            "onnx_session": self.onnx_session(),
        }

    def load_predictor(self, path: str | Path, name: str = "", version: str | None = None, **extra):
        """The one way every front end loads a model version: ``path`` served as ``name`` at
        ``version`` (None: metadata's), with these settings; ``extra``: a front end's own hooks."""
        from .predictor import Predictor  # lazily: --help needs no scikit-learn

        return Predictor.load(path, model_name=name, version=version, **self.predictor_options(), **extra)

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
            bare = {"nargs": "?", "const": True} if is_boolean(meta["cast"]) else {}
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
        VersionPolicy.parse(self.version_policy)


LOG_SINK_SCHEMES = ("http", "https", "kafka", "file", "s3", "gs", "gcs")


@dataclass(frozen=True)
class PayloadLogSettings(ModelSettings):
    """The payload log's settings (``core/payload_log.py``), shared by every front end that answers
    requests: the server, the edge runtime and the stream consumer (not batch or rollout)."""

    log_payloads: str = setting(
        "off",
        "Log inference payloads to --log_sink: request, response (or the error and its status), or all "
        "(one event holding both). Events go through a bounded in-memory queue: when the sink cannot keep "
        "up they are dropped and counted (model_server_payload_log_events_total), never is a request delayed.",
        choices=("off", "request", "response", "all"),
    )
    log_sample_rate: float = setting(1.0, "Share of requests logged (0 to 1), drawn per request.", float, minimum=0)
    log_sink: str | None = setting(
        None,
        "Where logged payloads go: http(s)://... (CloudEvents in binary mode, as KServe's logger sends "
        "them), kafka://host:port[,host:port]/topic (keyed by request id), or a folder (a path, file://... "
        "or s3://bucket/prefix) of Parquet files (JSON Lines without pyarrow) rolled every "
        "--log_roll_seconds or --log_roll_mb, named by time.",
        optional(str),
    )
    log_queue_size: int = setting(
        10_000, "Most payload log events held in memory per process; more are dropped.", int, minimum=1
    )
    log_roll_seconds: float = setting(
        60.0, "A file sink starts a new file after this many seconds.", float, minimum=0.1
    )
    log_roll_mb: float = setting(
        64.0, "A file sink starts a new file once this many megabytes of events are held.", float, minimum=0.001
    )

    def check(self) -> None:
        super().check()
        if self.log_sample_rate > 1:
            raise SettingsError(f"--log_sample_rate must be at most 1, got {self.log_sample_rate}")
        if self.log_payloads != "off" and not self.log_sink:
            raise SettingsError(f"--log_payloads {self.log_payloads} needs --log_sink")
        if self.log_sink:
            scheme = self.log_sink.split("://", 1)[0].lower() if "://" in self.log_sink else "file"
            if scheme not in LOG_SINK_SCHEMES:
                raise SettingsError(
                    f"--log_sink {self.log_sink}: expected http(s)://, kafka://, s3://, gs://, file:// or a folder"
                )


def redefault(cls, name: str, default):
    """``cls``'s field ``name`` (flag, help, checks) with another default: a front end's own."""
    (field,) = (f for f in dataclasses.fields(cls) if f.name == name)
    return dataclasses.field(default=default, metadata=field.metadata)


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
