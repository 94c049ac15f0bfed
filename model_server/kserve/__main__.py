"""``python -m model_server``: serve scikit-learn models over V1, V2 REST and V2 gRPC: one model
directory, a versions directory, or a repository of models (``--model_repository``).

Every setting is a flag and a ``MODEL_SERVER_*`` environment variable (``kserve/settings.py``); KServe's
other flags (``--predictor_host``, ...) are accepted and ignored, as a ServingRuntime may pass them.
``python -m model_server serve [flags]`` is the same server as SageMaker runs an image
(``kserve/sagemaker.py``: the model in /opt/ml/model, the port from SAGEMAKER_BIND_TO_PORT).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import sys
import warnings

if __name__ == "__main__":
    # Startup allocates about a million objects that live as long as the process (KServe, scikit-learn,
    # pandas, the model); the collector would walk them again and again while they load.
    # SklearnModelServer freezes them and turns the collector on before serving.
    gc.disable()
    from .import_shim import skip_package_init

    skip_package_init()  # no Kubernetes API client in the server process
    from .workers import prepare_multiprocess_metrics, resolve_auto_flag

    resolve_auto_flag(sys.argv)  # before KServe's parser reads it
    # Before anything imports prometheus_client: with --workers, every worker's metrics go to files.
    prepare_multiprocess_metrics(sys.argv[1:])

from kserve import logging as kserve_logging
from kserve import model_server as kserve_model_server

from ..core.errors import ModelServerError, SettingsError, status_of
from . import sagemaker
from .control import SupervisorLink
from .model import SklearnModelRepository
from .reloader import Reloader
from .server import SklearnModelServer
from .settings import ServerSettings
from .workers import Supervisor, WorkerHealth, check_reusable_port, listening_socket

logger = logging.getLogger("model_server")

DESCRIPTION = (
    "Serve a scikit-learn model (model.joblib / model.pkl / model.pickle, model.skops, or an MLflow model "
    "directory; optional metadata.json) over KServe's V1, V2 REST and V2 gRPC protocols and MLflow's "
    "scoring protocol (/invocations). `serve` first: run as SageMaker runs a container (docs/sagemaker.md)."
)


def parse_settings(argv: list[str] | None = None) -> ServerSettings:
    argv = sagemaker.arguments(sys.argv[1:] if argv is None else argv, os.environ)
    return ServerSettings.from_args(argv, description=DESCRIPTION, parents=[kserve_model_server.parser])


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    if settings.configure_logging:
        _configure_logging(settings.log_config_file)
    # KServe 0.21's own routes use FastAPI's deprecated ORJSONResponse; the warning on the first
    # health check is for KServe's maintainers, and nothing a user of this server can act on.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    repository = SklearnModelRepository(settings)
    for name in repository.discover():
        try:
            repository.load_now(name)
        except ModelServerError as exc:
            if repository.root is None:  # the one model this server is for
                logger.error("cannot serve %s: %s", settings.model_dir, exc)
                sys.exit(status_of(exc).exit_code)
            logger.error("model %s not loaded: %s", name, exc)  # the others serve; the index says why
    models = list(repository.models.values())
    if settings.workers != 1:
        sys.exit(_serve_with_workers(settings, repository))
    try:
        server = SklearnModelServer(settings, repository)  # reads the TLS and credential files
    except ModelServerError as exc:
        logger.error("cannot serve: %s", exc)
        sys.exit(status_of(exc).exit_code)
    server.start(models)


def _serve_with_workers(settings: ServerSettings, repository: SklearnModelRepository) -> int:
    """Fork --workers processes, each serving what was loaded here (kserve/workers.py)."""
    try:
        rest_socket = listening_socket(settings.https_port)
        if settings.enable_grpc:
            check_reusable_port(settings.grpc_port)
    except SettingsError as exc:
        logger.error("%s", exc)
        return status_of(exc).exit_code
    health = WorkerHealth()
    _import_what_workers_import()
    # Loading and warming allocated what lives as long as the workers: out of the collector's
    # reach before forking, so that no collection in a worker writes to (and copies) those pages.
    gc.freeze()
    # The repository API and --watch: the supervisor keeps the repository, loads, and replaces
    # the workers with fresh forks (kserve/reloader.py); without them, nothing changes after start.
    reloader = None
    if settings.repository_api_enabled or settings.watch:
        reloader = Reloader(repository, settings.watch_interval_seconds if settings.watch else None)

    def serve(number: int) -> None:
        link = SupervisorLink(supervisor.worker_channel) if reloader is not None else None
        server = SklearnModelServer(settings, repository, rest_socket=rest_socket, link=link)
        server.ours.state.healthy = health.ok
        server.start(list(repository.models.values()))  # as they are at this fork

    logger.info("serving with %d workers", settings.workers)
    supervisor = Supervisor(settings.workers, serve, health, reloader)
    return supervisor.run()


# What a worker imports on its way to serving, lazily: FastAPI's pydantic.v1 layer as KServe's
# routes are built (~40 ms), uvicorn's lifespan and websockets protocol, uvloop. Imported once in
# the supervisor, before forking, each worker (and each fresh one of a roll-over) starts without
# them, and their pages are shared.
WORKER_IMPORTS = (
    "pydantic.v1",
    "uvicorn.lifespan.on",
    "uvicorn.protocols.websockets.auto",
    "uvloop",
    "fastapi.telemetry._runtime",
)


def _import_what_workers_import() -> None:
    for name in WORKER_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


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
