"""``python -m model_server.edge``: the edge runtime, for devices without Kubernetes or KServe.

    python -m model_server.export --model_dir models/iris --out models/iris-onnx
    python -m model_server.edge --model_dir models/iris-onnx --model_name iris --http_port 8080

Serves a model directory (an exported ONNX directory, to need no scikit-learn) over the same V1
and V2 REST protocol (and MLflow's /invocations) as the server, with the same codec, schema checks, error messages,
micro-batching, limits and drain on SIGTERM: the same ASGI routes (``http.routes.DataPlaneRoutes``) on
uvicorn, over the same core. It imports neither KServe, FastAPI, pandas, scikit-learn nor scipy
(a pickled model would bring scikit-learn in: export it first). No gRPC: on a device REST is
what clients have; the main server serves gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from ..core.errors import ModelServerError, status_of
from ..core.event_loop import use_event_loop
from ..http.drain import Drain
from ..http.protocol import ServerHttpProtocol
from .app import build
from .settings import EdgeSettings

logger = logging.getLogger("model_server.edge")


def main(argv: list[str] | None = None) -> None:
    settings = EdgeSettings.from_args(argv, prog="python -m model_server.edge", description=__doc__.split("\n\n")[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        routes = build(settings)
    except ModelServerError as exc:
        logger.error("cannot serve %s: %s", settings.model_dir, exc)
        raise SystemExit(status_of(exc).exit_code) from None
    config = uvicorn.Config(
        routes,
        host=settings.host,
        port=settings.http_port,
        http=ServerHttpProtocol.configured(
            settings.max_header_bytes, settings.header_timeout_seconds, routes.dataplane.state
        ),
        lifespan="off",
        log_config=None,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.grace_seconds,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # ours drain first (http/drain.py)

    async def stop():
        server.should_exit = True
        routes.close()

    async def serve():
        Drain(routes.dataplane.state, settings.drain_seconds, stop).install(asyncio.get_running_loop())
        await server.serve()

    use_event_loop("auto")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
