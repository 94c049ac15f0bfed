"""``python -m model_server.edge``: the edge runtime, for devices without Kubernetes or KServe.

    python -m model_server.export --model_dir models/iris --out models/iris-onnx
    python -m model_server.edge --model_dir models/iris-onnx --model_name iris --http_port 8080

Serves a model directory (an exported ONNX directory, to need no scikit-learn) over the same V1
and V2 REST protocol as the server, with the same codec, schema checks, error messages,
micro-batching, limits and drain on SIGTERM: the same ASGI routes (``rest.DataPlaneRoutes``) on
uvicorn, over the same core. It imports neither KServe, FastAPI, pandas, scikit-learn nor scipy
(a pickled model would bring scikit-learn in: export it first). No gRPC: on a device REST is
what clients have; the main server serves gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import orjson
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .errors import ModelServerError, status_of
from .http_protocol import ServerHttpProtocol
from .inference import ServingState
from .predictor import Predictor
from .repository import ModelRepository
from .rest import DataPlaneRoutes
from .settings import ModelSettings, boolean, setting
from .shutdown import Drain

logger = logging.getLogger("model_server.edge")
SERVER_NAME = "model-server-edge"


@dataclass(frozen=True)
class EdgeSettings(ModelSettings):
    model_dir: str = setting("model", "The model directory (an exported ONNX directory needs no scikit-learn).")
    http_port: int = setting(8080, "HTTP port (V1 and V2 REST, health, metadata, /metrics).", int, minimum=0)
    host: str = setting("0.0.0.0", "Address to listen on.")
    max_request_bytes: int = setting(16 * 1024 * 1024, "Largest accepted request body; larger get 413.", int, minimum=1)
    max_request_rows: int = setting(100_000, "Most rows one request may carry; more get 413.", int, minimum=1)
    max_header_bytes: int = setting(64 * 1024, "Largest request head; larger get 431.", int, minimum=1024)
    header_timeout_seconds: float = setting(
        10.0, "A request head must arrive within this, else 408.", float, minimum=0.1
    )
    drain_seconds: float = setting(
        0.0, "On SIGTERM: seconds readiness is off while requests are still served.", float, minimum=0
    )
    grace_seconds: float = setting(10.0, "After the drain: how long requests in flight may take.", float, minimum=0)
    access_log: bool = setting(False, "Log one line per request.", boolean)


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


def build(settings: EdgeSettings) -> tuple[DataPlaneRoutes, ModelRepository, ServingState]:
    def load_predictor(path: Path, name: str, version: str | None) -> Predictor:
        return Predictor.load(
            path,
            model_name=name,
            version=version,
            max_request_rows=settings.max_request_rows,
            **settings.predictor_options(),
        )

    repository = ModelRepository.of_one_model(load_predictor, settings)
    state = ServingState()
    routes = DataPlaneRoutes(Fallback(version("model-server")), repository, settings.max_request_bytes, state)
    return routes, repository, state


def main(argv: list[str] | None = None) -> None:
    settings = EdgeSettings.from_args(argv, prog="python -m model_server.edge", description=__doc__.split("\n\n")[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        routes, _, state = build(settings)
    except ModelServerError as exc:
        logger.error("cannot serve %s: %s", settings.model_dir, exc)
        raise SystemExit(status_of(exc).exit_code) from None
    config = uvicorn.Config(
        routes,
        host=settings.host,
        port=settings.http_port,
        http=ServerHttpProtocol.configured(settings.max_header_bytes, settings.header_timeout_seconds, state),
        lifespan="off",
        log_config=None,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.grace_seconds,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # ours drain first (shutdown.py)

    async def stop():
        server.should_exit = True
        routes.close()

    async def serve():
        Drain(state, settings.drain_seconds, stop).install(asyncio.get_running_loop())
        await server.serve()

    try:
        import uvloop

        uvloop.run(serve())
    except ImportError:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
