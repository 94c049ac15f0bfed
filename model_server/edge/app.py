"""The edge runtime's ASGI application: the data-plane routes (``http.routes``) over the one
model, and what they leave (liveness, server metadata, /metrics) answered here."""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import server_version
from ..core.auth import Authenticator
from ..core.dataplane import DataPlane
from ..core.repository import ModelRepository
from ..http.routes import DataPlaneRoutes
from ..payload_log import payload_logger
from .settings import EdgeSettings

SERVER_NAME = "model-server-edge"


class Fallback:
    """What the data-plane routes leave: liveness at /, server metadata, /metrics, and 404."""

    def __init__(self, version: str):
        self.metadata = orjson.dumps({"name": SERVER_NAME, "version": version, "extensions": []})

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return
        path = scope["path"]
        if path == "/metrics":
            status, body, content_type = 200, generate_latest(), CONTENT_TYPE_LATEST
        elif path == "/v2":
            status, body, content_type = 200, self.metadata, "application/json"
        elif path == "/":
            status, body, content_type = 200, b'{"status":"alive"}', "application/json"
        else:
            status, body, content_type = 404, orjson.dumps({"error": f"no route {path}"}), "application/json"
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def build(settings: EdgeSettings, authenticator: Authenticator | None = None) -> DataPlaneRoutes:
    """The routes over the one model (``--model_dir``), loaded now; ``authenticator``: ``--auth``'s."""
    dataplane = DataPlane(ModelRepository.of_one_model(settings), payload_log=payload_logger(settings))
    return DataPlaneRoutes(
        Fallback(server_version()),
        dataplane,
        settings.max_request_bytes,
        settings.protocols,
        authenticator,
        metrics_open=not settings.auth_metrics,
    )
