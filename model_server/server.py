"""KServe's ModelServer with our fixes wired in: readiness, metadata, the fast inference routes."""

from __future__ import annotations

import kserve.model_server
from kserve import ModelServer
from kserve.protocol.dataplane import DataPlane

from .rest import InferenceRoutes


class ReadinessAwareDataPlane(DataPlane):
    """Stock KServe reports the server ready even with no model loaded; Kubernetes would then
    route traffic to a pod that can only answer errors. Ready here means: every registered
    model is loaded, and there is at least one."""

    async def ready(self) -> bool:
        models = self.model_registry.get_models()
        return bool(models) and all(model.ready for model in models.values())

    async def model_metadata(self, model_name: str) -> dict:
        metadata = await super().model_metadata(model_name)
        model = self.get_model_from_registry(model_name)
        version = getattr(model, "version", None)
        metadata["platform"] = "sklearn"
        if version is not None:
            metadata["versions"] = [version]
        return metadata


class SklearnModelServer(ModelServer):
    def __init__(self, max_request_bytes: int, **kwargs):
        super().__init__(**kwargs)
        self.dataplane = ReadinessAwareDataPlane(model_registry=self.registered_models)
        # KServe builds its FastAPI app at start(); middleware added now wraps its routes.
        kserve.model_server.app.add_middleware(
            InferenceRoutes, registry=self.registered_models, max_body_bytes=max_request_bytes
        )
