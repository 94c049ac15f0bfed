"""gRPC transport: KServe's V2 service, with ModelInfer decoded straight from protobuf into the seam.

Why not KServe's ModelInfer: it converts every request into an InferRequest and back (slow), and
malformed tensors fail inside that conversion with messages like "invalid content type". Why not
its interceptors: one logs every call at INFO, the other wraps every call in Python and maps
model failures to INVALID_ARGUMENT; here each RPC maps its errors through ``errors.STATUS``.
ModelReady and ModelMetadata answer for the version asked (KServe ignores it) and know about
draining; the repository RPCs are gated like the REST routes (``management.py``). The rest
(ServerLive, ServerReady, ServerMetadata) is KServe's own code over our data plane.
"""

from __future__ import annotations

import functools
import logging
from concurrent import futures

from grpc import StatusCode, aio
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferResponse
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from .codec import InferenceResponse, V2Request, decode_v2_grpc, tensor_to_bytes
from .errors import INTERNAL, describe, status_of
from .inference import ServingState, infer, model_metadata, model_ready
from .management import ManagementAccess

logger = logging.getLogger(__name__)


def _aborts_with_status(rpc):
    """Turn an exception into the gRPC status from errors.STATUS, logging real failures (those of
    ModelInfer are logged by the seam)."""

    @functools.wraps(rpc)
    async def wrapper(self, request, context):
        try:
            return await rpc(self, request, context)
        except Exception as exc:
            status = status_of(exc)
            if status is INTERNAL and rpc.__name__ != "ModelInfer":
                logger.exception("gRPC %s failed", rpc.__name__)
            await context.abort(StatusCode[status.grpc], describe(exc))

    return wrapper


def encode_v2_grpc(request: V2Request, response: InferenceResponse) -> ModelInferResponse:
    """The ``ModelInferResponse``; tensors go as raw_output_contents, the compact encoding."""
    outputs = response.outputs
    return ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=request.id or "",
        outputs=[
            ModelInferResponse.InferOutputTensor(name=o.name, datatype=o.datatype, shape=list(o.data.shape))
            for o in outputs
        ],
        raw_output_contents=[tensor_to_bytes(o.datatype, o.data) for o in outputs],
    )


class SklearnInferenceServicer(InferenceServicer):
    def __init__(self, data_plane, model_repository_extension, state: ServingState, management: ManagementAccess):
        super().__init__(data_plane, model_repository_extension)
        self.registry = data_plane.model_registry
        self.state = state
        self.management = management

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(
            ready=model_ready(self.registry, request.name, request.version or None, self.state)
        )

    async def ModelMetadata(self, request, context):
        metadata = model_metadata(self.registry, request.name, request.version or None)
        tensors = {
            kind: [pb.ModelMetadataResponse.TensorMetadata(**spec) for spec in metadata[kind]]
            for kind in ("inputs", "outputs")
        }
        return pb.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"], **tensors
        )

    async def RepositoryModelLoad(self, request, context):
        self.management.check(dict(context.invocation_metadata()).get("authorization"))
        await self.registry.load(request.model_name)
        return pb.RepositoryModelLoadResponse(model_name=request.model_name, isLoaded=True)

    async def RepositoryModelUnload(self, request, context):
        self.management.check(dict(context.invocation_metadata()).get("authorization"))
        await self.registry.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse(model_name=request.model_name, isUnloaded=True)

    async def ModelInfer(self, request, context):
        async def read():
            return decode_v2_grpc(request)

        return await infer(
            self._data_plane.model_registry,
            request.model_name,
            request.model_version or None,
            read,
            protocol="grpc",
            encode=encode_v2_grpc,
        )


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
    def __init__(self, *args, state: ServingState, management: ManagementAccess, **kwargs):
        super().__init__(*args, **kwargs)
        self.state = state
        self.management = management

    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            ],
        )
        servicer = SklearnInferenceServicer(
            self._data_plane, self._model_repository_extension, self.state, self.management
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._server.add_insecure_port(f"[::]:{self._port}")
        await self._server.start()
        await self._server.wait_for_termination()
