"""KServe's ModelServer with our fixes wired in: the data-plane routes, readiness, errors, drain.

Shutdown (SIGTERM, or SIGINT) drains before it stops: readiness answers not-ready at once while
the server keeps serving for ``--drain_seconds`` (Kubernetes endpoints, kube-proxy and ingresses
take seconds to stop routing to a terminating pod; stock KServe closes its listener within
0.1 s, so every request in that window is refused), every response meanwhile says
``Connection: close``; then the listeners close, requests in flight get ``--grace_seconds`` to
finish (gRPC clients get a GOAWAY), idle connections are closed, and the process exits 0. A
second signal skips what is left of the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os

from fastapi.responses import JSONResponse
from kserve import errors as kserve_errors
from kserve.model_server import ModelServer
from kserve.protocol.dataplane import DataPlane as KServeDataPlane

from ..core import errors
from ..core.access import ManagementAccess
from ..core.dataplane import DataPlane
from ..core.event_loop import use_event_loop
from ..core.repository import ModelRepository
from ..http.drain import Drain
from ..http.protocol import ServerHttpProtocol
from ..http.routes import DataPlaneRoutes
from ..payload_log import payload_logger
from .control import SupervisorLink
from .grpc import SklearnGRPCServer
from .settings import ServerSettings
from .workers import MULTIPROC_ENV, multiprocess_registry

logger = logging.getLogger(__name__)
# A replaced worker: how long its clients may take to reconnect elsewhere (each connection's next
# answer says Connection: close) before the connections left are closed.
RETIRE_SECONDS = 1.0

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


class ReadinessAwareDataPlane(KServeDataPlane):
    """KServe's data plane, for the routes and RPCs that remain KServe's (gRPC ServerReady, ...):
    readiness and metadata from ours, which knows about draining and versions. (Stock KServe
    reports the server ready even with no model loaded.)"""

    def __init__(self, ours: DataPlane):
        super().__init__(model_registry=ours.registry)
        self.ours = ours

    async def ready(self) -> bool:
        return self.ours.ready()

    async def model_ready(self, model_name: str, disable_predictor_health_check: bool = False) -> bool:
        return self.ours.model_ready(model_name)

    async def model_metadata(self, model_name: str) -> dict:
        return self.ours.model_metadata(model_name)


class SklearnModelServer(ModelServer):
    """``rest_socket``: a listener to serve REST on instead of binding --http_port (a worker's,
    inherited from the supervisor, kserve/workers.py); ``link``: a worker's channel to its
    supervisor, which answers the repository API and says when this worker is replaced
    (kserve/control.py)."""

    def __init__(
        self,
        settings: ServerSettings,
        repository: ModelRepository,
        rest_socket=None,
        link: SupervisorLink | None = None,
    ):
        # KServe's start() would build its own gRPC server; ours is added in start() instead.
        # TLS is ours (http/tls.py: checked reloads, mutual TLS, gRPC too): KServe gets no files.
        self.tls = settings.server_tls()
        self.authenticator = settings.authenticator()
        # Its workers stay 1: more are forked by kserve/workers.py, each one of these.
        super().__init__(
            http_port=settings.https_port,
            grpc_port=settings.grpc_port,
            workers=1,
            max_threads=settings.max_threads,
            max_asyncio_workers=settings.max_asyncio_workers,
            enable_grpc=False,
            enable_docs_url=settings.enable_docs_url,
            enable_latency_logging=settings.enable_latency_logging,
            access_log_format=settings.access_log_format,
            event_loop=settings.event_loop,
            timeout_keep_alive=settings.timeout_keep_alive,
            ssl_certfile=None,
            ssl_keyfile=None,
            grace_period=settings.grace_seconds,
            registered_models=repository,
        )
        self.settings = settings
        self.repository = repository
        self.rest_socket = rest_socket
        access = ManagementAccess(settings.repository_api_enabled, settings.bearer_token)
        # Every transport's; KServe's wraps it.
        self.link = link
        self.ours = DataPlane(repository, access=access, payload_log=payload_logger(settings), manager=link)
        self._retiring = False
        self._watch: asyncio.Task | None = None
        self._background: list[asyncio.Task] = []
        if not settings.access_log:
            # KServe's logging setup (in super().__init__) gives uvicorn.access a handler. Uvicorn
            # decides per connection with hasHandlers(), and formats the line's arguments (client
            # address, quoted path) before the logger's level could discard it: no handler at all.
            access = logging.getLogger("uvicorn.access")
            access.handlers, access.propagate = [], False
        self.dataplane = ReadinessAwareDataPlane(self.ours)

    def start(self, models) -> None:
        if self.settings.enable_grpc:
            # Set as _grpc_server so that KServe's stop() shuts it down on SIGTERM.
            self._grpc_server = SklearnGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(self.settings),
                grace_period=self.grace_period,
                ours=self.ours,
                authenticator=self.authenticator,
                tls=self.tls,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        use_event_loop(self.event_loop)
        asyncio.set_event_loop(asyncio.new_event_loop())  # KServe's setup_event_loop() expects one
        super().start(models)

    def register_signal_handler(self) -> None:
        """KServe's handlers would stop the servers at once: ours drain first (installed on the
        event loop in _serve)."""

    async def _serve(self) -> None:
        # The inference routes go outermost, in front of everything uvicorn would run for a
        # request: its proxy-headers middleware (which only rewrites the client address: the
        # access log, when on, shows the proxy's for these routes), FastAPI's per-request
        # telemetry check, Starlette and KServe's timing middleware (which logs two lines per
        # request). Uvicorn builds that chain in config.load(), done here, just before the servers
        # start, instead of inside serve(). Every other route still takes the whole chain.
        # Connections are handled by uvicorn's httptools protocol with coalesced writes.
        settings = self.settings
        rest = self._rest_server
        if rest is not None:
            config = rest.config
            config.http = ServerHttpProtocol.configured(
                settings.max_header_bytes, settings.header_timeout_seconds, self.ours.state
            )
            config.load()
            config.ssl = self.tls.listening if self.tls is not None else None
            config.loaded_app = DataPlaneRoutes(
                config.loaded_app,
                self.ours,
                settings.max_request_bytes,
                settings.protocols,
                self.authenticator,
                metrics_open=not settings.auth_metrics,
            )
            _answer_errors_from_our_table(rest)
            # Uvicorn would begin its shutdown at the first SIGTERM, closing the listener at once.
            rest._server.capture_signals = contextlib.nullcontext
            if self.rest_socket is not None:
                rest._server.serve = functools.partial(rest._server.serve, sockets=[self.rest_socket])
        loop = asyncio.get_running_loop()
        Drain(self.ours.state, settings.drain_seconds, self._stop_servers).install(loop)
        if self.link is not None:  # the supervisor loads and watches (kserve/reloader.py)
            await self.link.start(on_retire=self._retire)
            self._background.append(loop.create_task(self._tell_when_serving()))
        elif settings.watch:
            self._watch = loop.create_task(self.repository.watch(settings.watch_interval_seconds))
        self._background.append(loop.create_task(self.authenticator.watch(settings.auth_reload_seconds)))
        if self.tls is not None:
            self._background.append(loop.create_task(self.tls.watch(settings.tls_reload_seconds)))
        # Everything loaded so far (KServe, scikit-learn, pandas, the model) lives as long as the
        # process. Left in the collector's oldest generation, every full collection walks all of
        # it: long pauses, every few seconds under load. Frozen, full collections scan only what
        # requests allocate. (__main__ keeps the collector off until here.)
        gc.freeze()
        gc.enable()
        try:
            await super()._serve()
        finally:
            await self.ours.close()

    async def _tell_when_serving(self) -> None:
        """A fresh worker of a roll-over: the supervisor retires an old one once this one serves."""
        rest, grpc = self._rest_server, self._grpc_server
        while not ((rest is None or rest._server.started) and (grpc is None or grpc.started)):
            await asyncio.sleep(0.01)
        self.link.tell({"op": "ready"})

    def _retire(self) -> None:
        """Replaced by a fresh worker (or the supervisor is gone): stop accepting now; every
        connection's next answer says Connection: close (the one in flight too), so clients
        reconnect to the other workers without a request lost to a connection closed under it;
        once they did (at most RETIRE_SECONDS), stop as a drained server stops. No drain period:
        the pod's readiness does not change, the other workers serve."""
        if self._retiring or self.ours.state.draining:
            return  # already stopping
        self._retiring = True
        self.ours.state.draining = True
        rest = self._rest_server
        if rest is not None:
            for listener in getattr(rest._server, "servers", []):
                listener.close()
            for connection in list(rest._server.server_state.connections):
                cycle = getattr(connection, "cycle", None)
                if cycle is not None and not cycle.response_complete:
                    cycle.keep_alive = False
        asyncio.get_running_loop().create_task(self._finish_retiring())

    async def _finish_retiring(self) -> None:
        if self.link is not None:
            self.link.tell({"op": "retiring"})
        rest = self._rest_server
        deadline = asyncio.get_running_loop().time() + RETIRE_SECONDS
        while rest is not None and rest._server.server_state.connections:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.02)
        logger.info("replaced by a fresh worker: stopping")
        await self._stop_servers()

    async def _stop_servers(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        for task in self._background:
            task.cancel()
        logger.info("stopping: listeners closed, requests in flight have %gs to finish", self.settings.grace_seconds)
        if self._rest_server is not None:
            self._rest_server._server.should_exit = True  # uvicorn's own graceful shutdown
            self._rest_server.config.loaded_app.close()
        if self._grpc_server is not None:
            await self._grpc_server.stop()  # GOAWAY, then up to the grace period for calls in flight


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
        if MULTIPROC_ENV in os.environ:
            # KServe's /metrics handler encodes this module global: every worker's values, summed.
            from kserve.protocol.rest import server as kserve_rest

            kserve_rest.REGISTRY = multiprocess_registry()

    rest.create_application = create_and_map_errors


async def _error_response(request, exc: Exception) -> JSONResponse:
    status = errors.status_of(exc)
    if status is errors.INTERNAL:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse(status_code=status.http, content={"error": errors.describe(exc)})
