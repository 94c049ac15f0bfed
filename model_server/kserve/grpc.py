"""gRPC transport: KServe's V2 service, with ModelInfer decoded straight from protobuf into the data plane.

Why not KServe's ModelInfer: it converts every request into an InferRequest and back (slow), and
malformed tensors fail inside that conversion with messages like "invalid content type". Why not
its interceptors: one logs every call at INFO, the other wraps every call in Python and maps
model failures to INVALID_ARGUMENT; here each RPC maps its errors through ``errors.STATUS``.
ModelReady and ModelMetadata answer for the version asked (KServe ignores it) and know about
draining; the repository RPCs are gated like the REST routes (``core/access.py``). The rest
(ServerLive, ServerReady, ServerMetadata) is KServe's own code over our data plane.

With ``--auth`` every RPC but ServerLive, ServerReady and ModelReady needs the credential in its
metadata (``authorization: Bearer ...`` or ``x-api-key``), checked by ``core/auth.py`` as REST
checks it: UNAUTHENTICATED otherwise. With ``--tls_cert`` the port serves TLS (and mutual TLS with
``--tls_client_ca``) from the same files as REST, a renewed certificate picked up by gRPC's
certificate-configuration fetcher on the next handshake (``http/tls.py`` checks the files).
"""

from __future__ import annotations

import functools
import logging
from concurrent import futures

import grpc
import numpy as np
from grpc import StatusCode, aio
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferResponse
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

from ..core.auth import Authenticator
from ..core.codec import InferenceResponse, Tensor, V2Request
from ..core.codec.tensors import (
    NUMPY_DTYPES,
    array_of_size,
    check_datatype,
    check_range,
    check_shape,
    tensor_from_bytes,
    tensor_to_bytes,
)
from ..core.dataplane import DataPlane
from ..core.errors import INTERNAL, InvalidInput, describe, status_of
from ..http.tls import ServerTls

logger = logging.getLogger(__name__)


# Answered without a credential: the health and readiness RPCs (probes, load balancers).
OPEN_RPCS = ("ServerLive", "ServerReady", "ModelReady")
MANAGEMENT_RPCS = ("RepositoryModelLoad", "RepositoryModelUnload")


def _aborts_with_status(rpc):
    """Turn an exception into the gRPC status from errors.STATUS, logging real failures (those of
    ModelInfer are logged by the data plane)."""

    check_credential = rpc.__name__ not in OPEN_RPCS
    management = rpc.__name__ in MANAGEMENT_RPCS

    @functools.wraps(rpc)
    async def wrapper(self, request, context):
        try:
            # The repository RPCs with a management token: that token is their credential.
            own_token = management and self.ours.access.token is not None
            if check_credential and self.authenticator is not None and not own_token:
                self.authenticator.check(_credentials(context))
            return await rpc(self, request, context)
        except Exception as exc:
            status = status_of(exc)
            if status is INTERNAL and rpc.__name__ != "ModelInfer":
                logger.exception("gRPC %s failed", rpc.__name__)
            await context.abort(StatusCode[status.grpc], describe(exc))

    return wrapper


# -- the V2 gRPC wire format: decode and encode side by side ----------------------------------

# Typed contents field of InferTensorContents for each datatype (FP16 travels only as raw bytes).
GRPC_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


GRPC_CONTENTS_DTYPE = {
    "int_contents": np.int64,
    "int64_contents": np.int64,
    "uint_contents": np.uint64,
    "uint64_contents": np.uint64,
    "bool_contents": np.bool_,
    "fp32_contents": np.float32,
    "fp64_contents": np.float64,
    "bytes_contents": object,
}


def decode_v2_grpc(request) -> V2Request:
    """A ``ModelInferRequest``: tensors as typed contents or as raw_input_contents."""
    raw = request.raw_input_contents
    if not request.inputs:
        raise InvalidInput("the request has no inputs")
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(f"{len(request.inputs)} inputs but {len(raw)} raw_input_contents")
    tensors = []
    for i, spec in enumerate(request.inputs):
        datatype = check_datatype(spec.name, spec.datatype)
        shape = check_shape(spec.name, list(spec.shape))
        if raw:
            data = tensor_from_bytes(spec.name, datatype, shape, raw[i])
        elif datatype == "FP16":
            raise InvalidInput(f"input '{spec.name}': FP16 data must be sent in raw_input_contents")
        else:
            field = GRPC_CONTENTS_FIELD[datatype]
            # Typed contents are 32 or 64 bits wide whatever the datatype (int_contents carries
            # INT8 too): read them at the field's width, then check the datatype's range.
            values = np.array(getattr(spec.contents, field), dtype=GRPC_CONTENTS_DTYPE.get(field))
            check_range(spec.name, datatype, values)
            data = array_of_size(spec.name, shape, values.astype(NUMPY_DTYPES[datatype], copy=False))
        tensors.append(Tensor(spec.name, datatype, data))
    outputs = [o.name for o in request.outputs] or None
    return V2Request(request.id or None, tensors, outputs)


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
    """``kserve_data_plane``: KServe's, for the RPCs left to KServe's code; ``ours``: every other."""

    def __init__(
        self, kserve_data_plane, model_repository_extension, ours: DataPlane, authenticator: Authenticator | None = None
    ):
        super().__init__(kserve_data_plane, model_repository_extension)
        self.ours = ours
        self.authenticator = authenticator if authenticator is not None and authenticator.mode != "none" else None

    async def ModelReady(self, request, context):
        return pb.ModelReadyResponse(ready=self.ours.model_ready(request.name, request.version or None))

    async def ModelMetadata(self, request, context):
        metadata = self.ours.model_metadata(request.name, request.version or None)
        # TensorMetadata has no parameters (REST's carry dimension names and descriptions).
        tensors = {
            kind: [
                pb.ModelMetadataResponse.TensorMetadata(name=s["name"], datatype=s["datatype"], shape=s["shape"])
                for s in metadata[kind]
            ]
            for kind in ("inputs", "outputs")
        }
        return pb.ModelMetadataResponse(
            name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"], **tensors
        )

    async def RepositoryModelLoad(self, request, context):
        await self.ours.load(request.model_name, _authorization(context))
        return pb.RepositoryModelLoadResponse(model_name=request.model_name, isLoaded=True)

    async def RepositoryModelUnload(self, request, context):
        await self.ours.unload(request.model_name, _authorization(context))
        return pb.RepositoryModelUnloadResponse(model_name=request.model_name, isUnloaded=True)

    async def ModelInfer(self, request, context):
        async def read():
            return decode_v2_grpc(request)

        metadata = dict(context.invocation_metadata()) if self.ours.payload_log is not None else {}
        return await self.ours.infer(
            request.model_name,
            request.model_version or None,
            read,
            protocol="grpc",
            encode=encode_v2_grpc,
            request_id=metadata.get("x-request-id"),
            traceparent=metadata.get("traceparent"),
        )


CREDENTIAL_KEYS = ("authorization", "x-api-key")


def _credentials(context) -> dict[str, str]:
    """The metadata a credential travels in, alone."""
    return {key: value for key, value in context.invocation_metadata() if key in CREDENTIAL_KEYS}


def _authorization(context) -> str | None:
    return dict(context.invocation_metadata()).get("authorization")


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
    def __init__(
        self, *args, ours: DataPlane, authenticator: Authenticator | None = None, tls: ServerTls | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.ours = ours
        self.authenticator = authenticator
        self.tls = tls
        self.started = False  # serving: a roll-over's fresh worker says so (kserve/control.py)

    async def start(self, max_workers):
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
                # Workers (kserve/workers.py) each bind the gRPC port: the kernel spreads connections.
                *([("grpc.so_reuseport", 1)] if self._kwargs.get("workers", 1) > 1 else []),
            ],
        )
        servicer = SklearnInferenceServicer(
            self._data_plane, self._model_repository_extension, self.ours, self.authenticator
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        if self.tls is None:
            self._server.add_insecure_port(f"[::]:{self._port}")
        else:
            self._server.add_secure_port(f"[::]:{self._port}", server_credentials(self.tls))
        await self._server.start()
        self.started = True
        await self._server.wait_for_termination()


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """TLS credentials that follow ``tls``: gRPC asks the fetcher before each handshake, and it
    answers the new certificate once per swap (None: keep the one in use). gRPC's TLS is TLS 1.2+
    with ECDHE AEAD suites by default."""

    def configuration(pem):
        return grpc.ssl_server_certificate_configuration([(pem.key, pem.cert)], root_certificates=pem.client_ca)

    served = tls.generation

    def fetch():
        nonlocal served
        if tls.generation == served:
            return None
        served = tls.generation
        return configuration(tls.pem)

    return grpc.dynamic_ssl_server_credentials(configuration(tls.pem), fetch, require_client_authentication=tls.mutual)
