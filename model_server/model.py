"""``SklearnModel``: the core's ``ServedModel`` with KServe's model lifecycle, for KServe's registry.

KServe's own routes (metadata, readiness, CloudEvents on V1 predict) reach the model through
``load``, ``get_input_types`` / ``get_output_types`` and ``__call__``; our inference routes reach
its predictor through the seam (``inference.infer``).
"""

from __future__ import annotations

from kserve import Model
from kserve.metrics import PREDICT_HIST_TIME, get_labels
from kserve.model import InferenceVerb

from .codec import InferenceResponse, decode_v1, v1_response
from .inference import ServedModel
from .predictor import Predictor
from .settings import ServerSettings


class SklearnModel(ServedModel, Model):
    def __init__(self, name: str, settings: ServerSettings):
        Model.__init__(self, name)
        ServedModel.__init__(self, name)
        self.settings = settings

    def load(self) -> bool:
        settings = self.settings
        self.predictor = Predictor.load(
            settings.model_dir,
            backend=settings.backend,
            max_batch_size=settings.max_batch_size,
            max_batch_wait_ms=settings.max_batch_wait_ms,
            # KServe's request_predict_seconds: the batching wait and the estimator call.
            observe_predict_seconds=PREDICT_HIST_TIME.labels(**get_labels(self.name)).observe,
            max_request_rows=settings.max_request_rows,
        )
        self.ready = True
        return self.ready

    def get_input_types(self) -> list[dict]:
        return self.predictor.inputs_metadata()

    def get_output_types(self) -> list[dict]:
        return self.predictor.outputs_metadata()

    async def __call__(self, body, headers=None, verb: InferenceVerb = InferenceVerb.PREDICT):
        """KServe's entry for its own routes (CloudEvents on V1 predict): a V1 body in, a V1 body
        out. KServe's ``Model.__call__`` also inspects each handler and times each stage with its
        own histogram, as much as the rest of a one-row request; none of that is needed here."""
        if verb != InferenceVerb.PREDICT:
            raise NotImplementedError(f"{verb.name.lower()} is not supported by {type(self).__name__}")
        if not isinstance(body, dict):
            raise NotImplementedError("CloudEvents are answered on V1 predict (/v1/models/{name}:predict)")
        predictor = self.predictor_for(None)
        outputs = await predictor.infer(decode_v1(body))
        return v1_response(InferenceResponse(self.name, predictor.version, outputs)), {}
