"""HTTP transport of the data plane, as plain ASGI in front of any other app.

Answered here, through the core's ``DataPlane`` (every route in one table, ``DataPlaneRoutes.routes``):

- ``POST /v1/models/{name}:predict``, ``POST /v2/models/{name}[/versions/{v}]/infer``: inference,
  through ``DataPlane.infer``; CloudEvents (binary or structured mode) on both, answered
  as CloudEvents (``core/codec/cloudevent.py``; KServe's own routes answer them on V1 predict only);
- ``GET /v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}][/ready]``
  (also ``?model_version=``), ``/v1/models/{name}``: health, readiness and metadata, for every
  served version (KServe's own routes answer 501 whenever a version is named);
- ``POST /v2/repository/index``, ``/v2/repository/models/{name}/load`` and ``/unload``: the
  repository API (``core/repository.py``), only when enabled, with its token (``core/access.py``); 404
  for a model that does not exist (KServe answers 503);
- ``POST /invocations``, ``GET /ping``, ``/health``, ``/version``, ``/execution-parameters``:
  MLflow's scoring protocol and SageMaker's container contract (``http/mlflow.py``).

``protocols`` (``--protocols``) says which of v1, v2 and mlflow are served: the routes of the others
answer 404 saying so (not passed on: KServe's app would answer V1 and V2 itself). Health
(``/v2/health/*``) and the repository API answer whatever it says.

With ``--auth`` (``core/auth.py``), every request needs a credential except health and readiness
(``/v2/health/live``, ``/v2/health/ready``, a model's ready routes, ``/``, ``/ping``, ``/health``:
probes carry none) and ``/metrics`` unless ``--auth_metrics``; ``/invocations`` needs one, and so
do the requests passed on to the app behind (KServe's /docs, /openapi.json, /v1/models, /v2
server metadata...). A refused request gets 401 with ``WWW-Authenticate``. The repository API,
when it has its own management token, is checked against that token instead (one Authorization
header cannot carry both).

Every other request passes through to the app behind (KServe's FastAPI app in the server)
unchanged, its body limited the same way. Nothing here imports KServe, so a front end without it
serves the same routes.

Why not KServe's routes: they run each request through FastAPI dependency injection and pydantic
(the larger part of their per-request cost), answer a JSON body sent as a form (``curl -d``) with
500, reject ``tritonclient`` JSON requests, and have no request size limit.
"""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import parse_qs

import orjson

from ..core.auth import Authenticator
from ..core.body_decoder import BodyDecoder
from ..core.codec import INFERENCE_HEADER_LENGTH, cloudevent, encode_v1, encode_v2_rest
from ..core.dataplane import DataPlane
from ..core.errors import INTERNAL, Disabled, ModelNotReady, RequestTooLarge, Unauthorized, describe, status_of
from .mlflow import MlflowRoutes
from .settings import PROTOCOLS

JSON_HEADERS = [(b"content-type", b"application/json")]
# JSON bodies past this size are decoded in a helper process (core/body_decoder.py; docs/architecture.md).
OFFLOAD_BYTES = 256 * 1024


# Paths answered without a credential whatever --auth says: liveness and readiness (probes;
# SageMaker's /ping and MLflow's /health too).
OPEN_PATHS = frozenset(("/", "/v2/health/live", "/v2/health/ready", "/ping", "/health"))


class DataPlaneRoutes:
    def __init__(
        self,
        app,
        dataplane: DataPlane,
        max_body_bytes: int,
        protocols: tuple[str, ...] = PROTOCOLS,
        authenticator: Authenticator | None = None,
        metrics_open: bool = True,
    ):
        self.app = app
        self.dataplane = dataplane
        self.max_body_bytes = max_body_bytes
        self.protocols = tuple(protocols)
        self.authenticator = authenticator if authenticator is not None and authenticator.mode != "none" else None
        self.open_paths = OPEN_PATHS | {"/metrics"} if metrics_open else OPEN_PATHS
        self.decoder = BodyDecoder(OFFLOAD_BYTES)
        mlflow = MlflowRoutes(dataplane, self._read_body, max_body_bytes)
        # (protocol, method, path pattern, handler), the first match answering; any other request goes
        # to ``app``. Protocol None: served whatever --protocols says.
        table = [
            ("v2", "POST", r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer", self._infer_v2),
            ("v1", "POST", r"/v1/models/(?P<name>.+):predict", self._infer_v1),
            (None, "GET", r"/v2/health/live", self._live),
            (None, "GET", r"/v2/health/ready", self._ready),
            ("v2", "GET", r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?", self._model_metadata),
            ("v2", "GET", r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/ready", self._model_ready),
            ("v1", "GET", r"/v1/models/(?P<name>[^/:]+)", self._model_ready),
            (None, "POST", r"/v2/repository/index", self._repository_index),
            (None, "POST", r"/v2/repository/models/(?P<name>[^/]+)/(?P<action>load|unload)", self._repository_action),
            (None, "POST", r"/v2/repository/.*", self._repository_unknown),
            *(("mlflow", method, pattern, handler) for method, pattern, handler in mlflow.table()),
        ]
        self._repository_handlers = (self._repository_index, self._repository_action, self._repository_unknown)
        self.routes: dict[str, list] = {}
        for protocol, method, pattern, handler in table:
            if protocol is not None and protocol not in self.protocols:
                handler = self._switched_off(protocol)
            self.routes.setdefault(method, []).append((re.compile(pattern), handler))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = self._route(scope["method"], scope["path"])
        if self.authenticator is not None and not self._is_open(scope, route):
            try:
                self.authenticator.check(_credentials(scope))
            except Unauthorized as exc:
                headers = {"content-type": "application/json", "www-authenticate": exc.challenge}
                return await _respond(send, 401, _error(describe(exc)), headers)
        if route is None:
            return await self._pass_on(scope, receive, send)
        handler, match = route
        try:
            status, body, headers = await handler(match, scope, receive)
        except Exception as exc:
            status, body, headers = status_of(exc).http, _error(describe(exc)), None
            if isinstance(exc, Unauthorized):  # the management token's refusal says how to authenticate too
                headers = {"content-type": "application/json", "www-authenticate": exc.challenge}
        await _respond(send, status, body, headers)

    def close(self) -> None:
        self.decoder.close()

    def _is_open(self, scope, route) -> bool:
        """Whether this request is answered without a data-plane credential."""
        if scope["path"] in self.open_paths:
            return True
        if route is None:
            return False
        handler = route[0]
        if handler == self._model_ready:
            return True
        # The repository API with a management token: that token is its credential.
        return handler in self._repository_handlers and self.dataplane.access.token is not None

    def _route(self, method: str, path: str):
        for pattern, handler in self.routes.get(method, ()):
            match = pattern.fullmatch(path)
            if match is not None:
                return handler, match
        return None

    async def _pass_on(self, scope, receive, send):
        """The app behind answers; a request body it gets is limited as ours are."""
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await self._read_body(receive, _headers(scope))
        except Exception as exc:
            return await _respond(send, status_of(exc).http, _error(describe(exc)))
        return await self.app(scope, _replay(body, receive), send)

    def _switched_off(self, protocol: str):
        async def switched_off(match, scope, receive):
            served = ",".join(self.protocols)
            raise Disabled(f"the {protocol} protocol is not served here (--protocols {served}); add {protocol} to it")

        return switched_off

    # -- health, readiness, metadata ---------------------------------------------------------------

    async def _live(self, match, scope, receive):
        return _json(200, {"live": self.dataplane.live()})

    async def _ready(self, match, scope, receive):
        if self.dataplane.ready():
            return _json(200, {"ready": True})
        return _json(503, {"error": "the server is not ready (no model loaded, or shutting down)", "ready": False})

    async def _model_metadata(self, match, scope, receive):
        return _json(200, self.dataplane.model_metadata(match["name"], _version(match, scope)))

    async def _model_ready(self, match, scope, receive):
        name = match["name"]
        if not self.dataplane.model_ready(name, _version(match, scope)):
            raise ModelNotReady(f"Model with name {name} is not ready.")
        return _json(200, {"name": name, "ready": True})

    # -- inference ---------------------------------------------------------------------------------

    async def _infer_v1(self, match, scope, receive):
        return await self._infer("v1", match["name"], None, scope, receive)

    async def _infer_v2(self, match, scope, receive):
        return await self._infer("v2", match["name"], match["version"], scope, receive)

    async def _infer(self, protocol: str, name: str, version: str | None, scope, receive):
        headers = _headers(scope)
        if cloudevent.is_http_event(headers):
            read, encode = self._cloudevent_codec(protocol, name, receive, headers)
        else:

            async def read():
                body = await self._read_body(receive, headers)
                return await self.decoder.decode(protocol, body, headers.get(INFERENCE_HEADER_LENGTH))

            encode = encode_v1 if protocol == "v1" else encode_v2_rest
        try:
            body, response_headers = await self.dataplane.infer(
                name,
                version,
                read,
                protocol=protocol,
                encode=encode,
                request_id=headers.get("x-request-id"),
                traceparent=headers.get("traceparent"),
            )
        except Exception as exc:
            status = status_of(exc)
            message = f"model {name} failed: {describe(exc)}" if status is INTERNAL else describe(exc)
            return status.http, _error(message), None
        return 200, body, response_headers

    def _cloudevent_codec(self, protocol: str, name: str, receive, headers: dict):
        """A CloudEvent whose data is the route's request; the reply is a CloudEvent in the same
        mode (``cloudevent.reply``). KServe answers CloudEvents on V1 predict only."""
        event = None

        async def read():
            nonlocal event
            event = cloudevent.from_http(headers, await self._read_body(receive, headers))
            header_length = None if event.structured else headers.get(INFERENCE_HEADER_LENGTH)
            return await self.decoder.decode(protocol, event.data, header_length)

        def encode(request, response):
            if protocol == "v1":
                data, _ = encode_v1(request, response)
            else:  # event data is JSON: binary outputs are answered as JSON
                data, _ = encode_v2_rest(replace(request, binary_outputs=set()), response)
            return cloudevent.to_http(cloudevent.reply(event, name, data))

        return read, encode

    # -- the repository API ------------------------------------------------------------------------

    async def _repository_index(self, match, scope, receive):
        authorization = await self._repository_call(scope, receive)
        return _json(200, await self.dataplane.repository_index(authorization))

    async def _repository_action(self, match, scope, receive):
        authorization = await self._repository_call(scope, receive)
        name, action = match["name"], match["action"]
        await (self.dataplane.load if action == "load" else self.dataplane.unload)(name, authorization)
        return _json(200, {"name": name, action: True})

    async def _repository_unknown(self, match, scope, receive):
        self.dataplane.access.check(await self._repository_call(scope, receive))
        return 404, _error(f"no repository route {scope['path']}"), None

    async def _repository_call(self, scope, receive) -> str | None:
        """Read the body (Triton's load options: none apply here); the call's Authorization header."""
        headers = _headers(scope)
        await self._read_body(receive, headers)
        return headers.get("authorization")

    async def _read_body(self, receive, headers: dict) -> bytes:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and (len(declared) > 18 or int(declared) > self.max_body_bytes):
            raise RequestTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise RequestTooLarge(f"request body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _headers(scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


CREDENTIAL_HEADERS = (b"authorization", b"x-api-key")


def _credentials(scope) -> dict[str, str]:
    """The headers a credential travels in, alone (cheaper than decoding every header)."""
    return {k.decode().lower(): v.decode("latin-1") for k, v in scope["headers"] if k.lower() in CREDENTIAL_HEADERS}


def _version(match, scope) -> str | None:
    """The version a route names: in its path, else ``?model_version=``."""
    return match.groupdict().get("version") or _query_version(scope.get("query_string", b""))


def _json(status: int, document) -> tuple[int, bytes, None]:
    return status, orjson.dumps(document), None


def _query_version(query: bytes) -> str | None:
    values = parse_qs(query.decode("latin-1")).get("model_version")
    return values[0] if values else None


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect as usual

    return replayed


def _error(message: str) -> bytes:
    return orjson.dumps({"error": message})


async def _respond(send, status: int, body: bytes, headers: dict | None = None) -> None:
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()] if headers else list(JSON_HEADERS)
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
