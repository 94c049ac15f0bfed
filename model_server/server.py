"""KServe's ModelServer with our fixes wired in: readiness, metadata, errors, the fast inference routes."""

from __future__ import annotations

import asyncio
import gc
import logging

from fastapi.responses import JSONResponse
from kserve import ModelServer
from kserve import errors as kserve_errors
from kserve.protocol.dataplane import DataPlane

from . import errors
from .grpc_server import SklearnGRPCServer
from .http_protocol import CoalescingHttpToolsProtocol
from .rest import InferenceRoutes
from .settings import ServerSettings

logger = logging.getLogger(__name__)

# KServe's routes and RPCs raise KServe's own error types: answer them from our table too.
for _theirs, _ours in (
    (kserve_errors.InvalidInput, errors.InvalidInput),
    (kserve_errors.ModelNotFound, errors.ModelNotFound),
    (kserve_errors.ModelNotReady, errors.ModelNotReady),
    (kserve_errors.ServerNotReady, errors.ModelNotReady),
    (kserve_errors.ServerNotLive, errors.ModelNotReady),
    (kserve_errors.UnsupportedProtocol, NotImplementedError),
):
    errors.alias(_theirs, _ours)


class ReadinessAwareDataPlane(DataPlane):
    """Stock KServe reports the server ready even with no model loaded; Kubernetes would then
    route traffic to a pod that can only answer errors. Ready here means: every registered
    model is loaded, and there is at least one."""

    async def ready(self) -> bool:
        models = self.model_registry.get_models()
        return bool(models) and all(model.ready for model in models.values())

    async def model_metadata(self, model_name: str) -> dict:
        metadata = await super().model_metadata(model_name)
        model = self.get_model_from_registry(model_name)
        version = getattr(model, "version", None)
        metadata["platform"] = "sklearn"
        if version is not None:
            metadata["versions"] = [version]
        return metadata


class SklearnModelServer(ModelServer):
    def __init__(self, settings: ServerSettings):
        # KServe's start() would build its own gRPC server; ours is added in start() instead.
        super().__init__(
            http_port=settings.http_port,
            grpc_port=settings.grpc_port,
            workers=settings.workers,
            max_threads=settings.max_threads,
            max_asyncio_workers=settings.max_asyncio_workers,
            enable_grpc=False,
            enable_docs_url=settings.enable_docs_url,
            enable_latency_logging=settings.enable_latency_logging,
            access_log_format=settings.access_log_format,
            event_loop=settings.event_loop,
            timeout_keep_alive=settings.timeout_keep_alive,
            ssl_certfile=settings.ssl_certfile,
            ssl_keyfile=settings.ssl_keyfile,
        )
        self.settings = settings
        if not settings.access_log:
            # KServe's logging setup (in super().__init__) gives uvicorn.access a handler. Uvicorn
            # decides per connection with hasHandlers(), and formats the line's arguments (client
            # address, quoted path) before the logger's level could discard it: no handler at all.
            access = logging.getLogger("uvicorn.access")
            access.handlers, access.propagate = [], False
        self.dataplane = ReadinessAwareDataPlane(model_registry=self.registered_models)

    def start(self, models) -> None:
        if self.settings.enable_grpc:
            # Set as _grpc_server so that KServe's stop() shuts it down on SIGTERM.
            self._grpc_server = SklearnGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(self.settings),
                grace_period=self.grace_period,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        _use_event_loop(self.event_loop)
        super().start(models)

    async def _serve(self) -> None:
        # The inference routes go outermost, in front of everything uvicorn would run for a
        # request: its proxy-headers middleware (which only rewrites the client address: the
        # access log, when on, shows the proxy's for these routes), FastAPI's per-request
        # telemetry check, Starlette and KServe's timing middleware (which logs two lines per
        # request). Uvicorn builds that chain in config.load(), done here, just before the servers
        # start, instead of inside serve(). Every other route still takes the whole chain.
        # Connections are handled by uvicorn's httptools protocol with coalesced writes.
        rest = self._rest_server
        if rest is not None:
            config = rest.config
            config.http = CoalescingHttpToolsProtocol
            config.load()
            config.loaded_app = InferenceRoutes(
                config.loaded_app, registry=self.registered_models, max_body_bytes=self.settings.max_request_bytes
            )
            _answer_errors_from_our_table(rest)
        # Everything loaded so far (KServe, scikit-learn, pandas, the model) lives as long as the
        # process. Left in the collector's oldest generation, every full collection walks all of
        # it: long pauses, every few seconds under load. Frozen, full collections scan only what
        # requests allocate. (__main__ keeps the collector off until here.)
        gc.freeze()
        gc.enable()
        await super()._serve()


def _answer_errors_from_our_table(rest) -> None:
    """KServe's FastAPI app answers its own error types with its own handlers (which log a
    traceback for every client mistake) and anything else with 500. Once KServe has built the app
    (in RESTServer.start), ours take over for every type in errors.STATUS."""
    create_application = rest.create_application

    def create_and_map_errors():
        create_application()
        from kserve.model_server import app

        for error_type in errors.STATUS:
            app.add_exception_handler(error_type, _error_response)

    rest.create_application = create_and_map_errors


async def _error_response(request, exc: Exception) -> JSONResponse:
    status = errors.status_of(exc)
    if status is errors.INTERNAL:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=status.http, content={"error": errors.describe(exc)})


def _use_event_loop(choice: str) -> None:
    """Honour --event-loop: KServe passes it to uvicorn's config, but in a single process it runs
    its servers under plain asyncio.run(), so uvloop (faster on every route) is never used."""
    if choice in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                raise
            return
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.set_event_loop(asyncio.new_event_loop())  # KServe's setup_event_loop() expects one
