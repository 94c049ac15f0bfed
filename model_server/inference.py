"""The inference seam: one in-process call that every front end goes through.

    infer(registry, name, version, read, protocol=..., encode=...)

looks the model up, checks it is ready and has the version asked for, reads and decodes the
request (``read``: the transport's decoder), predicts, encodes the answer (``encode``: the
transport's encoder, given the decoded request so that its id and binary-output choice go
straight to it), and counts the request in ``model_server_requests_total`` with one status
vocabulary for every protocol: the HTTP status the error table gives (``errors.py``), "200" on
success. A failure that is not the client's is logged here, once, with its traceback. Whatever
fails is raised again for the transport to answer in its own terms.

REST and gRPC (``rest.py``, ``grpc_server.py``) are thin adapters over it: decoding and encoding
only. Like KServe's ``DataPlane`` and MLServer's ``DataPlane.infer``, but without their per-request
conversions (KServe parses every body through pydantic models and builds an ``InferRequest``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from .codec import InferenceResponse, V1Request, V2Request
from .errors import INTERNAL, ModelNotFound, ModelNotReady, status_of
from .metrics import requests_counter
from .predictor import Predictor

logger = logging.getLogger(__name__)

Request = V1Request | V2Request
Encoded = TypeVar("Encoded")


class ServedModel:
    """What a registry holds: a named model, ready or not, and its predictor. KServe's front end
    mixes KServe's lifecycle into it (``model.SklearnModel``); KServe-free front ends use it as it is."""

    def __init__(self, name: str, predictor: Predictor | None = None):
        self.name = name
        self.predictor = predictor
        self.ready = predictor is not None

    @property
    def version(self) -> str | None:
        return self.predictor.version if self.predictor is not None else None

    def predictor_for(self, version: str | None) -> Predictor:
        """The predictor of ``version`` (None: the default one)."""
        predictor = self.predictor
        if predictor is None or not self.ready:
            raise ModelNotReady(f"Model with name {self.name} is not ready.")
        if version is not None and version != predictor.version:
            raise ModelNotFound(f"model {self.name} has version {predictor.version}, not {version}")
        return predictor


class Registry(Protocol):
    """KServe's ``ModelRepository`` is one; so is a plain mapping wrapped in ``Models``."""

    def get_model(self, name: str) -> ServedModel | None: ...

    def get_models(self) -> dict[str, ServedModel]: ...


class ServingState:
    """What the whole server is doing: serving, or draining for shutdown (from SIGTERM on,
    readiness answers not-ready while requests are still served)."""

    def __init__(self):
        self.draining = False


class Models(dict):
    """A registry for front ends without KServe: ``{name: ServedModel}``."""

    def get_model(self, name: str) -> ServedModel | None:
        return self.get(name)

    def get_models(self) -> dict[str, ServedModel]:
        return self


def lookup(registry: Registry, name: str) -> ServedModel:
    model = registry.get_model(name)
    if model is None:
        raise ModelNotFound(f"Model with name {name} does not exist.")
    return model


def server_ready(registry: Registry, state: ServingState) -> bool:
    """Ready: not draining, at least one model, and every registered model loaded (stock KServe
    says ready with no model at all, and Kubernetes would route to a pod that can only fail)."""
    models = registry.get_models()
    return not state.draining and bool(models) and all(model.ready for model in models.values())


def model_ready(registry: Registry, name: str, version: str | None, state: ServingState) -> bool:
    """Whether ``name`` (at ``version``) answers now; an unknown model or version is ModelNotFound."""
    model = lookup(registry, name)
    try:
        model.predictor_for(version)
    except ModelNotReady:
        return False
    return not state.draining


def model_metadata(registry: Registry, name: str, version: str | None) -> dict:
    """The V2 model metadata: name, versions, platform, and the input and output tensors."""
    predictor = lookup(registry, name).predictor_for(version)
    return {
        "name": name,
        "versions": [predictor.version],
        "platform": "sklearn",
        "inputs": predictor.inputs_metadata(),
        "outputs": predictor.outputs_metadata(),
    }


async def infer(
    registry: Registry,
    name: str,
    version: str | None,
    read: Callable[[], Awaitable[Request]],
    *,
    protocol: str,
    encode: Callable[[Request, InferenceResponse], Encoded],
) -> Encoded:
    try:
        predictor = lookup(registry, name).predictor_for(version)
        request = await read()
        outputs = await predictor.infer(request)
        encoded = encode(request, InferenceResponse(name, predictor.version, outputs))
    except Exception as exc:
        status = status_of(exc)
        if status is INTERNAL:
            logger.exception("inference on model %s failed", name)
        requests_counter(protocol, str(status.http)).inc()
        raise
    requests_counter(protocol, "200").inc()
    return encoded
