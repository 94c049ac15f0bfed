"""gRPC transport: KServe's V2 service with ModelInfer decoded straight from protobuf.

Why not KServe's ModelInfer: it converts every request into an InferRequest and back (slow), and
malformed tensors fail inside that conversion with messages like "invalid content type". KServe's
LoggingInterceptor is left out too: it logs every call at INFO, a log line per request.
Every other RPC (health, metadata, repository) is KServe's.
"""

from __future__ import annotations

from concurrent import futures

from grpc import aio
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from .codec import decode_v2_grpc, encode_v2_grpc
from .errors import status_of
from .metrics import REQUESTS
from .model import ready_model


class SklearnInferenceServicer(InferenceServicer):
    async def ModelInfer(self, request, context):
        try:
            model = ready_model(self._data_plane.model_registry, request.model_name)
            response, _ = await model(decode_v2_grpc(request), dict(context.invocation_metadata()))
        except Exception as exc:
            REQUESTS.labels("grpc", status_of(exc)[1]).inc()
            raise  # ExceptionToStatusInterceptor turns it into the gRPC status
        REQUESTS.labels("grpc", "OK").inc()
        return encode_v2_grpc(response.model_name, response.model_version, response.id, response.outputs)


class SklearnGRPCServer(GRPCServer):
    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(ExceptionToStatusInterceptor(),),
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
