"""``python -m model_server.edge``: the edge runtime (what it is: ``edge/__init__.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .uvicorn_import import defer_package_init

defer_package_init()  # before the first import of uvicorn: not its command line and supervisors

from uvicorn.config import Config  # noqa: E402
from uvicorn.server import Server  # noqa: E402

from ..core.errors import ModelServerError, status_of  # noqa: E402
from ..core.event_loop import use_event_loop  # noqa: E402
from ..http.drain import Drain  # noqa: E402
from ..http.protocol import ServerHttpProtocol  # noqa: E402
from . import __doc__ as EDGE_DOC  # noqa: E402
from .app import build  # noqa: E402
from .settings import EdgeSettings  # noqa: E402

logger = logging.getLogger("model_server.edge")


def main(argv: list[str] | None = None) -> None:
    settings = EdgeSettings.from_args(argv, prog="python -m model_server.edge", description=EDGE_DOC.split("\n\n")[0])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        tls, authenticator = settings.server_tls(), settings.authenticator()
        routes = build(settings, authenticator)
    except ModelServerError as exc:
        logger.error("cannot serve %s: %s", settings.model_dir, exc)
        raise SystemExit(status_of(exc).exit_code) from None
    config = Config(
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
    config.load()
    config.ssl = tls.listening if tls is not None else None  # ours: checked reloads (http/tls.py)
    server = Server(config)
    server.capture_signals = contextlib.nullcontext  # ours drain first (http/drain.py)

    background = []

    async def stop():
        server.should_exit = True
        routes.close()
        for task in background:
            task.cancel()

    async def serve():
        loop = asyncio.get_running_loop()
        Drain(routes.dataplane.state, settings.drain_seconds, stop).install(loop)
        background.append(loop.create_task(authenticator.watch(settings.auth_reload_seconds)))
        if tls is not None:
            background.append(loop.create_task(tls.watch(settings.tls_reload_seconds)))
        try:
            await server.serve()
        finally:
            await routes.dataplane.close()

    use_event_loop("auto")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
