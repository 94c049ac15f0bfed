"""The data plane: one object every transport calls (REST, gRPC, the KServe glue, the Kafka
consumer, the edge runtime), constructed once over the registry of served models.

    DataPlane(registry, state, access)
        .live() .ready() .model_ready(name, version) .model_metadata(name, version)
        .infer(name, version, read, protocol=..., encode=...)
        .infer_many(name, version, items, decode, protocol=..., encode=...)
        .repository_index(authorization) .load(name, authorization) .unload(name, authorization)

``infer`` looks the model up, checks it is ready and has the version asked for, reads and decodes the
request (``read``: the transport's decoder), predicts, encodes the answer (``encode``: the
transport's encoder, given the decoded request so that its id and binary-output choice go
straight to it), and counts the request in ``model_server_requests_total`` with one status
vocabulary for every protocol: the HTTP status the error table gives (``errors.py``), "200" on
success. A failure that is not the client's is logged here, once, with its traceback. Whatever
fails is raised again for the transport to answer in its own terms.

Transports are thin adapters over it (``http/routes.py``, ``kserve/grpc.py``,
``stream/consumer.py``): decoding and encoding only. Like KServe's ``DataPlane`` and MLServer's,
but without their per-request conversions (KServe parses every body through pydantic models and
builds an ``InferRequest``).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from .access import ManagementAccess
from .codec import InferenceResponse, V1Request, V2Request
from .errors import INTERNAL, ModelNotFound, ModelNotReady, describe, status_of
from .metrics import requests_counter
from .payload_log import PayloadEvent, PayloadLogger
from .predictor import Predictor
from .versions import version_order

logger = logging.getLogger(__name__)

Request = V1Request | V2Request
Encoded = TypeVar("Encoded")
Item = TypeVar("Item")


class ServedModel:
    """What a registry holds: a named model, ready or not, and the predictors of the versions it
    serves. KServe's front end mixes KServe's lifecycle into it (``kserve.model.SklearnModel``);
    KServe-free front ends use it as it is. A new set of versions replaces the old in one
    assignment (``swap``): a request sees the old set or the new, never a mixture."""

    def __init__(self, name: str, predictor: Predictor | None = None):
        self.name = name
        self._served: tuple[dict[str, Predictor], str | None] = ({}, None)
        if predictor is not None:
            self.swap({predictor.version: predictor})
        self.ready = predictor is not None

    def swap(self, predictors: dict[str, Predictor]) -> None:
        """Serve exactly these versions from now on; the newest is the default."""
        self._served = (dict(predictors), max(predictors, key=version_order) if predictors else None)

    @property
    def predictors(self) -> dict[str, Predictor]:
        return self._served[0]

    @property
    def version(self) -> str | None:
        """The default version: the newest served."""
        return self._served[1]

    @property
    def versions(self) -> list[str]:
        return sorted(self._served[0], key=version_order)

    @property
    def predictor(self) -> Predictor | None:
        predictors, default = self._served
        return predictors.get(default) if default is not None else None

    def predictor_for(self, version: str | None) -> Predictor:
        """The predictor of ``version`` (None: the default one)."""
        predictors, default = self._served
        if not self.ready or default is None:
            raise ModelNotReady(f"Model with name {self.name} is not ready.")
        if version is None:
            return predictors[default]
        predictor = predictors.get(version)
        if predictor is None:
            served = ", ".join(sorted(predictors, key=version_order))
            raise ModelNotFound(f"model {self.name} has version {served}, not {version}")
        return predictor


class Registry(Protocol):
    """KServe's ``ModelRepository`` is one; so is a plain mapping wrapped in ``Models``."""

    def get_model(self, name: str) -> ServedModel | None: ...

    def get_models(self) -> dict[str, ServedModel]: ...

    def all_ready(self) -> bool: ...


class ServingState:
    """What the whole server is doing: serving, or draining for shutdown (from SIGTERM on,
    readiness answers not-ready while requests are still served)."""

    def __init__(self):
        self.draining = False
        # The front end's own say (a supervisor's: no worker keeps dying); ready only if it says so.
        self.healthy: Callable[[], bool] = lambda: True


class FixedRegistry(dict):
    """A registry of models given once, ``{name: ServedModel}``, for tests and tools that load
    their models themselves (front ends serve a ``ModelRepository``)."""

    def get_model(self, name: str) -> ServedModel | None:
        return self.get(name)

    def get_models(self) -> dict[str, ServedModel]:
        return self

    def all_ready(self) -> bool:
        return bool(self) and all(model.ready for model in self.values())


class DataPlane:
    """The registry's models, answered the same way for every transport. ``state``: draining or
    not (shared with the transports' listeners); ``access``: who may use the repository API;
    ``payload_log``: where sampled requests and their answers (or errors) are logged, None: nowhere;
    ``manager``: what answers the repository API (``repository_index``, ``load``, ``unload``, all
    awaited), the registry itself unless given (a forked worker's forwards to its supervisor)."""

    def __init__(
        self,
        registry: Registry,
        state: ServingState | None = None,
        access: ManagementAccess | None = None,
        payload_log: PayloadLogger | None = None,
        manager=None,
    ):
        self.registry = registry
        self.state = state or ServingState()
        self.access = access or ManagementAccess()
        self.payload_log = payload_log
        self.manager = manager if manager is not None else registry

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        """Ready: not draining, and every model to be served loaded (stock KServe says ready with no
        model at all, and Kubernetes would route to a pod that can only fail)."""
        return not self.state.draining and self.state.healthy() and self.registry.all_ready()

    def lookup(self, name: str) -> ServedModel:
        model = self.registry.get_model(name)
        if model is None:
            raise ModelNotFound(f"Model with name {name} does not exist.")
        return model

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """Whether ``name`` (at ``version``) answers now; an unknown model or version is ModelNotFound."""
        model = self.lookup(name)
        try:
            model.predictor_for(version)
        except ModelNotReady:
            return False
        return not self.state.draining

    def model_metadata(self, name: str, version: str | None = None) -> dict:
        """The V2 model metadata: name, versions, platform, and the input and output tensors."""
        model = self.lookup(name)
        predictor = model.predictor_for(version)
        return {
            "name": name,
            "versions": model.versions,
            "platform": predictor.platform,
            "inputs": predictor.inputs_metadata(),
            "outputs": predictor.outputs_metadata(),
        }

    async def infer(
        self,
        name: str,
        version: str | None,
        read: Callable[[], Awaitable[Request]],
        *,
        protocol: str,
        encode: Callable[[Request, InferenceResponse], Encoded],
        request_id: str | None = None,
        traceparent: str | None = None,
    ) -> Encoded:
        """``request_id``, ``traceparent``: what the transport got (headers, metadata) for the
        payload log; a V2 request's own id wins over ``request_id``."""
        model = predictor = request = response = None
        log = self.payload_log
        logged = log is not None and log.sampled()
        if logged:
            started, clock = time.time(), time.perf_counter()
        try:
            model = self.lookup(name)
            model.predictor_for(version)  # 404 / 503 before the body is read
            request = await read()
            # The version's predictor as it is now, after the read: a swap meanwhile is seen here.
            predictor = model.predictor_for(version)
            outputs = await predictor.infer(request)
            response = InferenceResponse(name, predictor.version, outputs)
            encoded = encode(request, response)
        except Exception as exc:
            status = status_of(exc)
            if status is INTERNAL:
                logger.exception("inference on model %s failed", name)
            # Labelled with a model and version only where they exist: request paths must not mint series.
            labels = (name if model is not None else "", predictor.version if predictor is not None else "")
            requests_counter(protocol, str(status.http), *labels).inc()
            if logged:
                event = PayloadEvent(
                    _request_id(request, request_id), name, labels[1] or version, protocol, started,
                    time.perf_counter() - clock, status.http, request, None, describe(exc), traceparent,
                )  # fmt: skip
                log.offer(event)
            raise
        requests_counter(protocol, "200", name, predictor.version).inc()
        if logged:
            event = PayloadEvent(
                _request_id(request, request_id), name, predictor.version, protocol, started,
                time.perf_counter() - clock, 200, request, response, None, traceparent,
            )  # fmt: skip
            log.offer(event)
        return encoded

    async def infer_many(
        self,
        name: str,
        version: str | None,
        items: Sequence[Item],
        decode: Callable[[Item], Request],
        *,
        protocol: str,
        encode: Callable[[Item, Request, InferenceResponse], Encoded],
    ) -> list[Encoded | Exception]:
        """``infer`` for many requests a transport holds at once (the messages of a Kafka poll;
        an HTTP batch endpoint could do the same): ``decode(item)`` is each one's request,
        ``encode(item, request, response)`` its answer. One answer or exception per item, in
        order: an item that fails decoding, checking or encoding fails alone, the others are
        predicted together (``Predictor.infer_many``). Counted and logged as ``infer`` counts
        and logs each request."""
        log = self.payload_log
        started, clock = time.time(), time.perf_counter()
        results: list = [None] * len(items)
        requests: list = [None] * len(items)
        model = predictor = None
        undecoded: set[int] = set()  # labelled without a version, as infer labels a failed read
        try:
            model = self.lookup(name)
            predictor = model.predictor_for(version)
        except Exception as exc:  # no such model (version), or not ready: every item is refused
            results = [exc] * len(items)
        else:
            good = []
            for i, item in enumerate(items):
                try:
                    requests[i] = decode(item)
                    good.append(i)
                except Exception as exc:
                    results[i] = exc
                    undecoded.add(i)
            try:
                predictor = model.predictor_for(version)  # as infer: a swap meanwhile is seen here
                predicted = await predictor.infer_many([requests[i] for i in good])
            except Exception as exc:  # unloaded meanwhile
                predicted = [exc] * len(good)
            for i, outputs in zip(good, predicted, strict=True):
                if isinstance(outputs, Exception):
                    results[i] = outputs
                    continue
                response = InferenceResponse(name, predictor.version, outputs)
                try:
                    results[i] = (encode(items[i], requests[i], response), response)
                except Exception as exc:
                    results[i] = exc
        model_label = name if model is not None else ""
        version_label = predictor.version if predictor is not None else ""
        codes: Counter = Counter()
        answers = []
        seconds = time.perf_counter() - clock
        for i, result in enumerate(results):
            logged = log is not None and log.sampled()
            if isinstance(result, Exception):
                status = status_of(result)
                if status is INTERNAL:
                    logger.error("inference on model %s failed", name, exc_info=result)
                served = "" if i in undecoded else version_label
                codes[str(status.http), served] += 1
                answers.append(result)
                if logged:
                    event = PayloadEvent(
                        _request_id(requests[i], None), name, served or version, protocol, started, seconds,
                        status.http, requests[i], None, describe(result), None,
                    )  # fmt: skip
                    log.offer(event)
                continue
            encoded, response = result
            codes["200", version_label] += 1
            answers.append(encoded)
            if logged:
                event = PayloadEvent(
                    _request_id(requests[i], None), name, predictor.version, protocol, started, seconds,
                    200, requests[i], response, None, None,
                )  # fmt: skip
                log.offer(event)
        for (code, served), count in codes.items():
            requests_counter(protocol, code, model_label, served).inc(count)
        return answers

    async def close(self) -> None:
        """At shutdown, once requests are answered: deliver the payload log's queued events."""
        if self.payload_log is not None:
            await self.payload_log.close()

    # The repository API (``manager``: a ``repository.ModelRepository``), gated by ``access``.

    async def repository_index(self, authorization: str | None) -> list[dict]:
        self.access.check(authorization)
        return await self.manager.repository_index()

    async def load(self, name: str, authorization: str | None) -> None:
        self.access.check(authorization)
        await self.manager.load(name)

    async def unload(self, name: str, authorization: str | None) -> None:
        self.access.check(authorization)
        await self.manager.unload(name)


def _request_id(request: Request | None, given: str | None) -> str | None:
    """The id a logged request goes by: the V2 body's, else the transport's, else None (the
    payload log makes one off the request path)."""
    own = getattr(request, "id", None) or given
    return None if own is None else str(own)
