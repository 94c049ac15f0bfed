"""The ops HTTP port: /healthz, /readyz and /metrics, in the consumer's own event loop.

A tiny ASGI app on uvicorn (already installed with the server) rather than prometheus_client's
threaded server: one port for all three, answered from the same loop that consumes, so a
stuck loop fails its liveness probe instead of looking healthy from another thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import uvicorn
from prometheus_client import REGISTRY, make_asgi_app

from ..kserve.workers import multiprocess_registry


class OpsApp:
    def __init__(self, live: Callable[[], bool], ready: Callable[[], tuple[bool, str]], multiprocess: bool = False):
        """``multiprocess``: /metrics sums every worker's values (prometheus_client's multiprocess mode)."""
        self.live = live
        self.ready = ready
        self.metrics = make_asgi_app(multiprocess_registry() if multiprocess else REGISTRY)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/metrics":
            return await self.metrics(scope, receive, send)
        if path == "/healthz":
            alive = self.live()
            status, body = (200, b"ok") if alive else (503, b"the consumer has stopped")
        elif path == "/readyz":
            ready, reason = self.ready()
            status, body = (200, b"ready") if ready else (503, reason.encode())
        else:
            status, body = 404, b"not found: /healthz, /readyz, /metrics"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class OpsServer(uvicorn.Server):
    """Uvicorn without its signal handling: SIGTERM belongs to the consumer's drain."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def ops_server(app: OpsApp, port: int, host: str = "0.0.0.0") -> OpsServer:
    config = uvicorn.Config(app, host=host, port=port, lifespan="off", log_level="warning", access_log=False)
    return OpsServer(config)
