"""MLflow's scoring protocol and SageMaker's container contract, on the HTTP port beside V1 and V2.

    POST /invocations           the model's predictions (``core/codec/mlflow.py``), through ``DataPlane.infer``
    GET  /ping, /health         200 with an empty body once ready; 503 while loading or draining
    GET  /version               this server's version
    GET  /execution-parameters  SageMaker batch transform's settings for this container

Routes of ``http/routes.py``'s table, switched on and off together with ``--protocols``
(``mlflow``). Where this differs from ``mlflow models serve`` on purpose (docs/mlflow.md):

- ``/ping`` answers 503 while the model is not ready or the server drains (MLflow's answers 200
  once its process is up, 404 only when it has no model): SageMaker and load balancers must not
  send traffic to a server that cannot answer it. Its body is empty (MLflow's is a newline), as
  SageMaker's contract asks;
- ``params`` the model's signature does not declare are a 400 naming them (MLflow ignores them);
- a body without a Content-Type is 415 (MLflow's server fails with a 500).

Errors are MLflow's JSON (``{"error_code": "BAD_REQUEST", "message": ...}``), except 415, which
MLflow answers as plain text, and so does this. An error's status is our one table's
(``core/errors.py``), the same as V1's and V2's for the same mistake.
"""

from __future__ import annotations

import asyncio
import os

import orjson

from .. import server_version
from ..core.codec.mlflow import decode_mlflow, encode_mlflow, error_document
from ..core.dataplane import DataPlane
from ..core.errors import INTERNAL, InvalidInput, ModelNotReady, describe, status_of

# MLflow's error codes (mlflow.protos.databricks_pb2) for the statuses our error table gives.
ERROR_CODES = {
    400: "BAD_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "REQUEST_LIMIT_EXCEEDED",
    501: "NOT_IMPLEMENTED",
    503: "TEMPORARILY_UNAVAILABLE",
}
JSON_HEADERS = {"content-type": "application/json"}
TEXT_HEADERS = {"content-type": "text/plain; charset=utf-8"}
# Bodies past this size are decoded in a worker thread, not on the event loop every client shares.
THREAD_BYTES = 256 * 1024
MIB = 1024 * 1024


class MlflowRoutes:
    """The routes of the protocol, for ``DataPlaneRoutes``' table; ``read_body`` reads a request's
    body within the server's limit."""

    def __init__(self, dataplane: DataPlane, read_body, max_body_bytes: int):
        self.dataplane = dataplane
        self.read_body = read_body
        self.max_body_bytes = max_body_bytes
        self.version = server_version().encode()

    def table(self) -> list[tuple[str, str, object]]:
        return [
            ("POST", r"/invocations", self._invocations),
            ("GET", r"/ping", self._ping),
            ("GET", r"/health", self._ping),
            ("GET", r"/version", self._version),
            ("GET", r"/execution-parameters", self._execution_parameters),
        ]

    async def _ping(self, match, scope, receive):
        if self.dataplane.ready():
            return 200, b"", JSON_HEADERS
        message = "the server is not ready (the model is loading, or the server is shutting down)"
        return 503, error_document(ERROR_CODES[503], message), JSON_HEADERS

    async def _version(self, match, scope, receive):
        return 200, self.version, JSON_HEADERS  # as MLflow's /version: the bare version string

    async def _execution_parameters(self, match, scope, receive):
        """What SageMaker batch transform asks a container before it sends records: concurrent
        requests are worth one per core (the micro-batcher joins them into one predict call), one
        request may carry many records, and no more than the body limit."""
        document = {
            "MaxConcurrentTransforms": len(os.sched_getaffinity(0)),
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, min(100, self.max_body_bytes // MIB)),  # SageMaker takes 1..100
        }
        return 200, orjson.dumps(document), JSON_HEADERS

    async def _invocations(self, match, scope, receive):
        try:
            name = self._model_name()
        except Exception as exc:
            return _error(exc)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        async def read():
            body = await self.read_body(receive, headers)
            predictor = self.dataplane.lookup(name).predictor_for(None)
            schema, metadata = getattr(predictor, "schema", None), predictor.artifact.metadata
            if schema is None:  # a predictor of named tensors, not of columns (a generic graph's, say)
                raise NotImplementedError(
                    f"model {name} takes tensors, not the columns of MLflow's formats: use /v2/models/{name}/infer"
                )
            features = schema.features or ()
            text = frozenset(f.name for f in features if not f.numeric)
            numeric = frozenset(f.name for f in features if f.numeric)
            params, predict_fn = getattr(metadata, "params", ()), getattr(metadata, "predict_fn", "predict")
            arguments = (body, headers.get("content-type"), text, numeric, params, predict_fn)
            if len(body) > THREAD_BYTES:
                return await asyncio.to_thread(decode_mlflow, *arguments)
            return decode_mlflow(*arguments)

        try:
            body, response_headers = await self.dataplane.infer(
                name, None, read, protocol="mlflow", encode=encode_mlflow
            )
        except Exception as exc:
            return _error(exc, name)
        return 200, body, response_headers

    def _model_name(self) -> str:
        """/invocations has no model in its path: it answers for a server of one model."""
        models = list(self.dataplane.registry.get_models())
        if len(models) == 1:
            return models[0]
        if not models:
            raise ModelNotReady("no model is loaded on this server")
        raise InvalidInput(
            f"this server serves {len(models)} models ({', '.join(sorted(models))}); /invocations answers "
            "for a server of one model: use /v2/models/{name}/infer or /v1/models/{name}:predict"
        )


def _error(exc: Exception, name: str | None = None):
    status = status_of(exc)
    message = f"model {name} failed: {describe(exc)}" if status is INTERNAL and name else describe(exc)
    if status.http == 415:  # MLflow's server answers these in plain text
        return 415, message.encode(), TEXT_HEADERS
    return status.http, error_document(ERROR_CODES.get(status.http, "INTERNAL_ERROR"), message), JSON_HEADERS
