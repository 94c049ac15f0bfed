"""``SklearnModel``: the core's ``ServedModel`` with KServe's model lifecycle, for KServe's registry,
and the repository KServe's ``ModelServer`` is given.

KServe's own routes (the model list, explain) reach a model through
``get_input_types`` / ``get_output_types`` and ``__call__``; our routes reach its predictors
through the data plane (``core.dataplane.DataPlane``). Models are loaded by the repository
(``core/repository.py``).
"""

from __future__ import annotations

from pathlib import Path

from kserve.metrics import PREDICT_HIST_TIME, get_labels
from kserve.model import InferenceVerb, Model
from kserve.model_repository import ModelRepository as KServeModelRepository

from ..core.dataplane import ServedModel
from ..core.predictor import Predictor
from ..core.repository import ModelRepository
from ..core.versions import VersionPolicy
from .settings import ServerSettings


class SklearnModel(ServedModel, Model):
    def __init__(self, name: str):
        Model.__init__(self, name)
        ServedModel.__init__(self, name)

    def get_input_types(self) -> list[dict]:
        return self.predictor_for(None).inputs_metadata()

    def get_output_types(self) -> list[dict]:
        return self.predictor_for(None).outputs_metadata()

    async def __call__(self, body, headers=None, verb: InferenceVerb = InferenceVerb.PREDICT):
        """KServe's entry for its own routes. Every inference request (CloudEvents too) is answered
        by ours (``http/routes.py``) before it could get here; what remains is explain, not implemented."""
        raise NotImplementedError(f"{verb.name.lower()} is not supported by {type(self).__name__}")


class SklearnModelRepository(ModelRepository, KServeModelRepository):
    """Our repository as KServe's ModelServer and DataPlane expect theirs (get_model, update, ...)."""

    def __init__(self, settings: ServerSettings):
        def load_predictor(path: Path, name: str, version: str | None) -> Predictor:
            # KServe's request_predict_seconds (by model name): the batching wait and the estimator call.
            observe = PREDICT_HIST_TIME.labels(**get_labels(name)).observe
            return settings.load_predictor(path, name, version, observe_predict_seconds=observe)

        root = Path(settings.model_repository) if settings.model_repository else None
        ModelRepository.__init__(self, load_predictor, SklearnModel, VersionPolicy.parse(settings.version_policy), root)
        self.models_dir = settings.model_repository or settings.model_dir  # KServe reads it
        if root is None:
            self.add(settings.model_name, Path(settings.model_dir))
