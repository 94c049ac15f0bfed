"""KServe's ModelServer with our fixes wired in: readiness, metadata, the fast inference routes."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging

from kserve import ModelServer
from kserve.protocol.dataplane import DataPlane

from .grpc_server import SklearnGRPCServer
from .rest import CoalescingHttpToolsProtocol, InferenceRoutes


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
    def __init__(
        self,
        max_request_bytes: int,
        grpc_options: argparse.Namespace,
        access_log: bool = False,
        enable_grpc: bool = True,
        **kwargs,
    ):
        # KServe's start() would build its own gRPC server; ours is added in start() instead.
        super().__init__(enable_grpc=False, **kwargs)
        self.serve_grpc = enable_grpc
        self.grpc_options = grpc_options
        if not access_log:
            # KServe's logging setup (in super().__init__) gives uvicorn.access a handler. Uvicorn
            # decides per connection with hasHandlers(), and formats the line's arguments (client
            # address, quoted path) before the logger's level could discard it: no handler at all.
            access = logging.getLogger("uvicorn.access")
            access.handlers, access.propagate = [], False
        self.dataplane = ReadinessAwareDataPlane(model_registry=self.registered_models)
        self.max_request_bytes = max_request_bytes

    def start(self, models) -> None:
        if self.serve_grpc:
            # Set as _grpc_server so that KServe's stop() shuts it down on SIGTERM.
            self._grpc_server = SklearnGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(self.grpc_options),
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
        # Connections are handled by uvicorn's httptools protocol with coalesced writes (rest.py).
        if self._rest_server is not None:
            config = self._rest_server.config
            config.http = CoalescingHttpToolsProtocol
            config.load()
            config.loaded_app = InferenceRoutes(
                config.loaded_app, registry=self.registered_models, max_body_bytes=self.max_request_bytes
            )
        # Everything loaded so far (KServe, scikit-learn, pandas, the model: ~10^6 objects) lives
        # as long as the process. Left in the collector's oldest generation, every full collection
        # walks all of it: ~90 ms pauses, every few seconds under 64-row V1 load. Frozen, full
        # collections scan only what requests allocate. (__main__ keeps the collector off until
        # here.)
        gc.freeze()
        gc.enable()
        await super()._serve()


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
