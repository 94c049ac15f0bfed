"""gRPC transport: KServe's V2 service with ModelInfer decoded straight from protobuf.

Why not KServe's ModelInfer: it converts every request into an InferRequest and back (slow), and
malformed tensors fail inside that conversion with messages like "invalid content type". Why not
its interceptors: one logs every call at INFO, the other wraps every call in Python and maps
model failures to INVALID_ARGUMENT; here each RPC maps its errors through ``errors.STATUS``.
Every other RPC (health, metadata, repository) is KServe's own code.
"""

from __future__ import annotations

import functools
import logging
from concurrent import futures

from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from .codec import decode_v2_grpc, encode_v2_grpc
from .errors import INTERNAL, status_of
from .metrics import requests_counter
from .model import ready_model

logger = logging.getLogger(__name__)


def _aborts_with_status(rpc):
    """Turn an exception into the gRPC status from errors.STATUS, logging real failures."""

    @functools.wraps(rpc)
    async def wrapper(self, request, context):
        try:
            return await rpc(self, request, context)
        except Exception as exc:
            code = status_of(exc)[1]
            if code == INTERNAL[1]:
                logger.exception("gRPC %s failed", rpc.__name__)
                await context.abort(code, f"{type(exc).__name__}: {exc}")
            await context.abort(code, str(exc))

    return wrapper


class SklearnInferenceServicer(InferenceServicer):
    async def ModelInfer(self, request, context):
        try:
            model = ready_model(self._data_plane.model_registry, request.model_name)
            response, _ = await model(decode_v2_grpc(request), dict(context.invocation_metadata()))
        except Exception as exc:
            requests_counter("grpc", status_of(exc)[1].name).inc()
            raise
        requests_counter("grpc", "OK").inc()
        return encode_v2_grpc(response.model_name, response.model_version, response.id, response.outputs)


for _name in (
    "ServerLive",
    "ServerReady",
    "ServerMetadata",
    "ModelReady",
    "ModelMetadata",
    "RepositoryModelLoad",
    "RepositoryModelUnload",
    "ModelInfer",
):
    setattr(SklearnInferenceServicer, _name, _aborts_with_status(getattr(SklearnInferenceServicer, _name)))


class SklearnGRPCServer(GRPCServer):
    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        servicer = SklearnInferenceServicer(self._data_plane, self._model_repository_extension)
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"[::]:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()
