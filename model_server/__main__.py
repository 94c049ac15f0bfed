"""``python -m model_server``: serve one scikit-learn model directory over V1, V2 REST and V2 gRPC.

Accepts every flag of KServe's model server (``--http_port``, ``--grpc_port``, ``--workers``, ...)
plus the ones below. Each of ours can also be set by an environment variable of the same name in
upper case with a ``MODEL_SERVER_`` prefix (for the Helm chart and Dockerfile).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import warnings

if __name__ == "__main__":
    # Startup allocates ~10^6 objects that live as long as the process (KServe, scikit-learn,
    # pandas, the model); the collector would walk them again and again while they load (~0.2 s
    # of cold start). SklearnModelServer freezes them and turns the collector on before serving.
    gc.disable()

from kserve import logging as kserve_logging
from kserve import model_server as kserve_model_server

from .artifact import ArtifactError
from .model import SklearnModel
from .server import SklearnModelServer

logger = logging.getLogger("model_server")


def _env(name: str, default, cast=str):
    value = os.environ.get(f"MODEL_SERVER_{name.upper()}")
    return cast(value) if value is not None else default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_server",
        description="Serve a scikit-learn model (model.joblib / model.pkl / model.pickle, optional "
        "metadata.json) over KServe's V1, V2 REST and V2 gRPC protocols.",
        parents=[kserve_model_server.parser],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model_dir",
        default=_env("model_dir", "/mnt/models"),
        help="Directory with the model file (KServe's storage initializer puts it in /mnt/models).",
    )
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=_env("max_batch_size", 512, int),
        help="Most rows predicted in one estimator call when concurrent requests are batched; 1 turns batching off.",
    )
    parser.add_argument(
        "--max_batch_wait_ms",
        type=float,
        default=_env("max_batch_wait_ms", 0.0, float),
        help="How long a request may wait for batch mates when the estimator is idle. 0: never wait "
        "(batches still form from requests that arrive while a prediction runs).",
    )
    parser.add_argument(
        "--max_request_bytes",
        type=int,
        default=_env("max_request_bytes", 16 * 1024 * 1024, int),
        help="Largest accepted HTTP request body; larger ones get 413.",
    )
    parser.add_argument(
        "--backend",
        choices=["auto", "sklearn", "onnx"],
        default=_env("backend", "auto"),
        help="What predicts: sklearn; onnx: ONNX Runtime (pip install model-server[onnx]) for any "
        "classifier over numeric features that converts with skl2onnx and gives the same answers on a "
        "parity sample, else scikit-learn; auto: onnx for scikit-learn ensembles (forests, boosting), "
        "where it is many times faster, when ONNX Runtime is installed, sklearn otherwise.",
    )
    parser.add_argument(
        "--access_log",
        type=_bool,
        default=_env("access_log", False, _bool),
        help="Log one line per HTTP request (uvicorn's access log; KServe logs it always). Off by "
        "default: at thousands of requests per second it costs more than the request itself.",
    )
    # KServe logs preprocess/predict/postprocess latency for every request by default; the
    # same figures are in the Prometheus histograms, so the log line is off unless asked for.
    parser.set_defaults(enable_latency_logging=_env("enable_latency_logging", False, _bool))
    return parser


def _bool(value) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers != 1:
        # KServe's multi-process mode re-imports its app in spawned children, without the routes,
        # readiness and batching added here. Scale out with replicas (see the Helm chart) instead.
        parser.error("--workers must be 1: run more replicas to use more cores")
    if args.configure_logging:
        _configure_logging(args.log_config_file)
    # KServe 0.21's own routes use FastAPI's deprecated ORJSONResponse; the warning on the first
    # health check is for KServe's maintainers, and nothing a user of this server can act on.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    model = SklearnModel(args.model_name, args.model_dir, args.max_batch_size, args.max_batch_wait_ms, args.backend)
    try:
        model.load()
    except (ArtifactError, ValueError) as exc:
        logger.error("cannot serve %s: %s", args.model_dir, exc)
        sys.exit(1)
    # Every KServe setting from our parse: ModelServer's defaults come from KServe's own parse of
    # sys.argv at import, which knows none of our flags and reads "--access_log" as an
    # abbreviation of its "--access_log_format".
    kserve_settings = (
        "http_port",
        "grpc_port",
        "workers",
        "max_threads",
        "max_asyncio_workers",
        "enable_grpc",
        "enable_docs_url",
        "enable_latency_logging",
        "access_log_format",
        "event_loop",
        "timeout_keep_alive",
        "ssl_certfile",
        "ssl_keyfile",
    )
    server = SklearnModelServer(
        max_request_bytes=args.max_request_bytes,
        access_log=args.access_log,
        grpc_options=args,
        **{name: getattr(args, name) for name in kserve_settings},
    )
    server.start([model])


def _configure_logging(log_config_file: str | None) -> None:
    """KServe's log setup, done before the model loads so that loading is logged; our loggers
    share KServe's handler, format and level (KSERVE_LOGLEVEL)."""
    kserve_logging.configure_logging(log_config_file)
    kserve_logger = logging.getLogger(kserve_logging.KSERVE_LOGGER_NAME)
    logger.handlers = kserve_logger.handlers
    logger.setLevel(kserve_logger.level)
    logger.propagate = False


if __name__ == "__main__":
    main()
