"""``SklearnModel``: KServe's model lifecycle (load / preprocess / predict / postprocess).

preprocess  decoded request (V1 dict, V2Request from REST or gRPC) -> validated ``X``
predict     ``X`` -> the requested outputs, micro-batched with concurrent requests, off the loop
postprocess outputs -> the protocol's response (V1 dict, V2Response)
"""

from __future__ import annotations

import logging
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady
from kserve.metrics import PREDICT_HIST_TIME, get_labels
from kserve.model import InferenceVerb

from . import engines
from .artifact import ModelArtifact
from .batching import MicroBatcher
from .codec import Output, V2Request, datatype_of, v1_instances
from .schema import InputSchema

logger = logging.getLogger(__name__)

PREDICT, PROBA, LABEL = "predict", "predict_proba", "label"
V1_OUTPUT_PARAMETERS = {"probabilities": PROBA, "labels": LABEL}


@dataclass
class PreparedRequest:
    """What preprocess hands to predict, and predict to postprocess."""

    X: object
    outputs: list[str]
    source: object  # the decoded request: a V1 dict or a V2Request
    predictions: dict = field(default_factory=dict)


@dataclass
class V2Response:
    model_name: str
    model_version: str
    id: str | None
    outputs: list[Output]
    binary_outputs: set[str]


class SklearnModel(Model):
    def __init__(
        self,
        name: str,
        model_dir: str,
        max_batch_size: int = 512,
        max_batch_wait_ms: float = 0.0,
        backend: str = "auto",
    ):
        super().__init__(name)
        self.model_dir = model_dir
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_batch_wait_ms = max_batch_wait_ms
        self.artifact: ModelArtifact | None = None

    # -- load ------------------------------------------------------------------------------

    def load(self) -> bool:
        self.artifact = ModelArtifact.load(self.model_dir)
        estimator = self.artifact.estimator
        self.estimator = estimator
        self.version = self.artifact.version
        self.schema = InputSchema.for_estimator(estimator, self.artifact.features)
        self.output_types = self._derive_output_types()
        # What predict calls: the estimator, or a faster twin that gives the same answers (engines.py).
        self.engine = engines.engine_for(estimator, self.backend, self.schema.n_features, self.schema.numeric)
        # One thread: predict calls never overlap, and batches grow while one runs.
        executor = ThreadPoolExecutor(1, thread_name_prefix="predict", initializer=_quiet_sklearn)
        self.batcher = MicroBatcher(
            self._predict_batch,
            executor,
            self.max_batch_size,
            self.max_batch_wait_ms / 1000,
            inline_rows=getattr(self.engine, "inline_max_rows", 0),
        )
        self._predict_seconds = PREDICT_HIST_TIME.labels(**get_labels(self.name))
        self.ready = True
        logger.info(
            "loaded %s (%s, sha256 %s, version %s, %s features, predicting with %s)",
            self.artifact.path,
            type(estimator).__name__,
            self.artifact.sha256[:12],
            self.version,
            self.schema.n_features,
            type(self.engine).__name__ if self.engine is not estimator else "scikit-learn",
        )
        return self.ready

    def _derive_output_types(self) -> dict[str, dict]:
        estimator = self.estimator
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            return {PREDICT: {"datatype": "FP64", "shape": [-1]}}
        classes = np.asarray(classes)
        labels = self.artifact.class_labels
        if labels is not None and len(labels) != len(classes):
            raise ValueError(f"metadata has {len(labels)} class_labels, the estimator has {len(classes)} classes")
        self.class_labels = np.array([str(c) for c in (labels or classes)], dtype=object)
        types = {
            PREDICT: {"datatype": datatype_of(classes), "shape": [-1]},
            LABEL: {"datatype": "BYTES", "shape": [-1]},
        }
        if hasattr(estimator, "predict_proba"):
            types[PROBA] = {"datatype": "FP64", "shape": [-1, len(classes)]}
        return types

    def get_input_types(self) -> list[dict]:
        if self.schema.features:
            return [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in self.schema.features]
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, self.schema.n_features or -1]}]

    def get_output_types(self) -> list[dict]:
        return [{"name": name, **spec} for name, spec in self.output_types.items()]

    async def __call__(self, body, headers=None, verb: InferenceVerb = InferenceVerb.PREDICT):
        """The three stages, as in KServe's ``Model.__call__``, minus its per-request overhead: it
        inspects each handler and times each stage with its own Prometheus histogram, about 25 us
        a request, as much as all the rest of the work for one row. KServe's
        request_predict_seconds is kept (it spans the batching wait and the estimator call)."""
        if verb != InferenceVerb.PREDICT:
            raise NotImplementedError(f"{verb.name.lower()} is not supported by {type(self).__name__}")
        request = await self.preprocess(body, headers)
        start = time.perf_counter()
        request = await self.predict(request, headers)
        self._predict_seconds.observe(time.perf_counter() - start)
        return await self.postprocess(request, headers), {}

    # -- preprocess --------------------------------------------------------------------------

    async def preprocess(self, payload, headers=None) -> PreparedRequest:
        if isinstance(payload, V2Request):
            return PreparedRequest(self.schema.from_tensors(payload.inputs), self._v2_outputs(payload.outputs), payload)
        instances, parameters = v1_instances(payload)
        outputs = [PREDICT]
        for parameter, output in V1_OUTPUT_PARAMETERS.items():
            if parameters.get(parameter):
                if output not in self.output_types:
                    raise InvalidInput(f'parameter "{parameter}" is not available for {type(self.estimator).__name__}')
                outputs.append(output)
        return PreparedRequest(self.schema.from_rows(instances), outputs, payload)

    def _v2_outputs(self, requested: list[str] | None) -> list[str]:
        if requested is None:
            return [PREDICT]
        unknown = [name for name in requested if name not in self.output_types]
        if unknown:
            raise InvalidInput(f"unknown outputs {unknown}; this model has {list(self.output_types)}")
        return requested or [PREDICT]

    # -- predict ------------------------------------------------------------------------------

    async def predict(self, request: PreparedRequest, headers=None) -> PreparedRequest:
        request.predictions = await self.batcher.predict(request.X, frozenset(request.outputs))
        return request

    def _predict_batch(self, X, outputs: frozenset) -> dict[str, np.ndarray]:
        """Runs on a whole batch: in the predict thread, or on the event loop when the engine is that fast."""
        engine = self.engine
        try:
            result = {}
            if PREDICT in outputs or LABEL in outputs:
                result[PREDICT] = np.asarray(engine.predict(X))
            if LABEL in outputs:
                index = np.searchsorted(self.estimator.classes_, result[PREDICT])
                result[LABEL] = self.class_labels[index]
            if PROBA in outputs:
                result[PROBA] = np.asarray(engine.predict_proba(X), dtype=np.float64)
            return result
        except ValueError as exc:
            # Shape and types were checked already; a ValueError left is about the values
            # themselves (say, a category the fitted encoder has never seen): the client's to fix.
            raise InvalidInput(f"the model rejected the input: {exc}") from exc

    # -- postprocess ----------------------------------------------------------------------------

    async def postprocess(self, request: PreparedRequest, headers=None, response_headers=None):
        predictions, source = request.predictions, request.source
        if isinstance(source, dict):  # V1
            body = {"predictions": predictions[PREDICT].tolist()}
            for parameter, output in V1_OUTPUT_PARAMETERS.items():
                if output in predictions:
                    body[parameter] = predictions[output].tolist()
            return body
        outputs = [Output(name, self.output_types[name]["datatype"], predictions[name]) for name in request.outputs]
        return V2Response(self.name, self.version, source.id, outputs, source.binary_outputs)


def ready_model(registry, name: str) -> SklearnModel:
    """The named model from KServe's registry, or the error that says why it cannot answer."""
    model = registry.get_model(name)
    if model is None:
        raise ModelNotFound(name)
    if not model.ready:
        raise ModelNotReady(name)
    return model


def _quiet_sklearn() -> None:
    """Predict-thread setup: our schema check already did scikit-learn's validation work."""
    import sklearn

    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    # Estimators fitted on DataFrames warn on every ndarray call; the columns are in fit order.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
