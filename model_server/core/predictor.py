"""``Predictor``: one loaded model version, from a decoded request to its outputs.

artifact (verified, loaded) + input schema + engine + output types + a micro-batcher. Every
front end predicts through it: the KServe model and the edge runtime call ``infer()`` (batched
with concurrent requests), batch scoring calls ``predict_batch()`` on its own chunks.

    infer(request)   V1Request / V2Request -> schema check -> X -> batcher -> predict_batch -> outputs
    infer_many(requests)  the same for many requests a transport has at once (a Kafka poll): each
                     checked alone, their rows predicted together, the outputs split back
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from . import engines
from .artifact import ModelArtifact
from .batching import MicroBatcher, concat
from .codec import LABEL, PREDICT, PROBA, Output, V1Request, V2Request, datatype_of
from .drift import DriftMonitor
from .errors import ArtifactError, InvalidInput, ModelFailure, RequestTooLarge
from .metrics import BATCH_ROWS, PREDICT_SECONDS
from .onnx.generic import GenericOnnxModel
from .onnx.model import OnnxModel
from .onnx.tensor_predictor import OnnxTensorPredictor
from .schema import InputSchema

logger = logging.getLogger(__name__)

# Past this many rows a request is checked in a worker thread (docs/architecture.md: the cost).
OFFLOAD_ROWS = 2048


class Predictor:
    def __init__(
        self,
        artifact: ModelArtifact,
        backend: str = "auto",
        max_batch_size: int = 512,
        max_batch_wait_ms: float = 0.0,
        observe_predict_seconds: Callable[[float], None] | None = None,
        max_request_rows: int | None = None,
        model_name: str = "",
        version: str | None = None,
        onnx_cache_dir: str | Path | None = None,
        drift: bool = True,
        drift_window_rows: int = 10_000,
        drift_window_seconds: float = 600.0,
    ):
        """``version``: what a versions directory names it (else metadata.json's, else "1")."""
        self.artifact = artifact
        self.estimator = estimator = artifact.estimator
        self.version = version or artifact.version
        if version and artifact.metadata.version not in ("1", version):  # "1": the default, or unset
            raise ArtifactError(
                f"{artifact.path.parent}: metadata.json says version {artifact.metadata.version}, "
                f"its directory says {version}"
            )
        self.schema = InputSchema.for_estimator(estimator, artifact.metadata.features, artifact.metadata.documents)
        self.output_types = self._derive_output_types()
        # What predicts: the estimator, or a faster twin that gives the same answers (engines.py).
        schema = self.schema
        # The converted graph is kept by the model file's content (and the width it was converted for).
        onnx_cache = Path(onnx_cache_dir) / f"{artifact.sha256}-{schema.n_features}.onnx" if onnx_cache_dir else None
        self.engine = engines.engine_for(
            estimator, backend, schema.n_features, schema.numeric, schema.allow_nan, onnx_cache=onnx_cache
        )
        # One thread: predict calls never overlap, and batches grow while one runs.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict", initializer=quiet_sklearn)
        self.batcher = MicroBatcher(
            self.predict_batch,
            self._executor,
            max_batch_size,
            max_batch_wait_ms / 1000,
            inline_rows=getattr(self.engine, "inline_max_rows", 0),
            inline_ok=getattr(self.engine, "fast_for", None),
            observe_rows=BATCH_ROWS.labels(model_name, self.version).observe,
        )
        # Drift against profile.json when the model directory has one (core/drift.py).
        self.drift = None
        if drift:
            self.drift = DriftMonitor.for_model(
                artifact.path.parent,
                artifact.metadata.profile_sha256,
                schema.names,
                model_name,
                self.version,
                window_rows=drift_window_rows,
                window_seconds=drift_window_seconds,
            )
        self._predict_seconds = PREDICT_SECONDS.labels(model_name, self.version).observe
        self._observe_predict_seconds = observe_predict_seconds
        self.max_request_rows = max_request_rows
        self.in_flight = 0

    @classmethod
    def load(
        cls, model_dir: str | Path, require_sha256: bool = False, onnx_session=None, **options
    ) -> Predictor | OnnxTensorPredictor:
        """``require_sha256``: refuse an unpinned pickle (``ModelArtifact.load``)."""
        artifact = ModelArtifact.load(model_dir, require_sha256=require_sha256, onnx_session=onnx_session)
        return cls.from_artifact(artifact, **options)

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact, **options) -> Predictor | OnnxTensorPredictor:
        """A Predictor; for a generic ONNX graph, its OnnxTensorPredictor (the same face)."""
        if isinstance(artifact.estimator, GenericOnnxModel):
            return OnnxTensorPredictor.from_artifact(artifact, **options)
        predictor = cls(artifact, **options)
        logger.info(
            "loaded %s (%s, %s, sha256 %s, version %s, %s features, predicting with %s)",
            artifact.path,
            artifact.format,
            type(predictor.estimator).__name__,
            artifact.sha256[:12],
            predictor.version,
            predictor.schema.n_features,
            _engine_name(predictor.engine, predictor.estimator),
        )
        return predictor

    def _derive_output_types(self) -> dict[str, dict]:
        """The outputs this model offers, with the datatype and shape it really answers: from
        one probe row predicted at load (a cluster id is INT32, an IsolationForest's -1/1 INT64,
        a two-output regressor [-1, 2]), else from the fitted attributes."""
        estimator = self.estimator
        predicted, probabilities = self._probe()
        if predicted is not None:
            types = {PREDICT: {"datatype": datatype_of(predicted), "shape": [-1, *predicted.shape[1:]]}}
        else:
            n_outputs = getattr(estimator, "n_outputs_", 1)
            shape = [-1, n_outputs] if isinstance(n_outputs, int) and n_outputs > 1 else [-1]
            types = {PREDICT: {"datatype": "FP64", "shape": shape}}
        classes = getattr(estimator, "classes_", None)
        if classes is None or isinstance(classes, list) or np.ndim(classes) != 1:
            return types  # no classes, or one set per output (multi-output classifiers): no labels
        classes = np.asarray(classes)
        labels = self.artifact.metadata.class_labels
        if labels is not None and len(labels) != len(classes):
            raise ArtifactError(f"metadata has {len(labels)} class_labels, the estimator has {len(classes)} classes")
        self.class_labels = np.array([str(c) for c in (labels or classes)], dtype=object)
        if predicted is None:
            types[PREDICT]["datatype"] = datatype_of(classes)
        types[LABEL] = {"datatype": "BYTES", "shape": [-1]}
        if hasattr(estimator, "predict_proba") and (probabilities is None or probabilities.ndim == 2):
            types[PROBA] = {"datatype": "FP64", "shape": [-1, len(classes)]}
        return types

    def _probe(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """predict (and predict_proba) on the schema's probe row; (None, None) if it cannot run."""
        X = self.schema.probe()
        if X is None:
            return None, None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                predicted = np.asarray(self.estimator.predict(X))
                probabilities = None
                if hasattr(self.estimator, "predict_proba"):
                    probabilities = np.asarray(self.estimator.predict_proba(X))
        except Exception as exc:  # the probe is a best effort: the attributes still tell a lot
            logger.warning(
                "output types from the fitted attributes: a probe row failed (%s: %s)", type(exc).__name__, exc
            )
            return None, None
        return predicted, probabilities

    # -- metadata ------------------------------------------------------------------------------

    @property
    def platform(self) -> str:
        """V2 metadata's platform: Triton's name for an ONNX graph, else sklearn."""
        return "onnxruntime_onnx" if isinstance(self.estimator, OnnxModel) else "sklearn"

    def probe(self):
        """A row to predict before the version takes traffic (None: nothing to synthesize)."""
        return self.schema.probe()

    def inputs_metadata(self) -> list[dict]:
        if self.schema.features:
            return [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in self.schema.features]
        return [{"name": "input-0", "datatype": "FP64", "shape": [-1, self.schema.n_features or -1]}]

    def outputs_metadata(self) -> list[dict]:
        return [{"name": name, **spec} for name, spec in self.output_types.items()]

    # -- predicting ----------------------------------------------------------------------------

    async def infer(self, request: V1Request | V2Request) -> list[Output]:
        """The requested outputs for a decoded request, predicted in a batch with concurrent ones."""
        self.in_flight += 1  # a retired version is closed only once nothing is in flight on it
        try:
            if _rows(request) > OFFLOAD_ROWS:
                # Checking a large request takes milliseconds: not on the event loop, where every
                # other client would wait for it.
                X, outputs = await asyncio.to_thread(self.prepare, request)
            else:
                X, outputs = self.prepare(request)
            start = time.perf_counter()
            predictions = await self.batcher.predict(X, frozenset(outputs))
            seconds = time.perf_counter() - start
        finally:
            self.in_flight -= 1
        self._predict_seconds(seconds)
        if self._observe_predict_seconds is not None:
            self._observe_predict_seconds(seconds)
        return [Output(name, self.output_types[name]["datatype"], predictions[name]) for name in outputs]

    async def infer_many(self, requests: list[V1Request | V2Request]) -> list[list[Output] | Exception]:
        """``infer`` for many requests a transport holds at once (a Kafka consumer's poll): each
        is checked on its own (a bad one gets its own error, in its place in the list), the
        rows of the others are concatenated and predicted in as few estimator calls as
        ``max_batch_size`` allows, and the outputs split back per request. One future and one
        batcher entry per estimator call instead of one per request."""
        results: list = [None] * len(requests)
        groups: dict[tuple, list] = {}  # inputs of one layout can be concatenated
        self.in_flight += 1
        try:
            for i, request in enumerate(requests):
                try:
                    rows = _rows(request)
                    if rows > OFFLOAD_ROWS:
                        X, outputs = await asyncio.to_thread(self.prepare, request, rows)
                    else:
                        X, outputs = self.prepare(request, rows)
                except Exception as exc:
                    results[i] = exc
                    continue
                groups.setdefault(_layout(X), []).append((i, X, outputs))
            chunks = [chunk for members in groups.values() for chunk in self._chunks(members)]
            await asyncio.gather(*[self._predict_chunk(chunk, results) for chunk in chunks])
        finally:
            self.in_flight -= 1
        return results

    def _chunks(self, members: list) -> list[list]:
        """Consecutive members in runs of at most max_batch_size rows (one larger runs alone)."""
        chunks, chunk, rows = [], [], 0
        limit = self.batcher.max_rows
        for member in members:
            n = len(member[1])
            if chunk and rows + n > limit:
                chunks.append(chunk)
                chunk, rows = [], 0
            chunk.append(member)
            rows += n
        if chunk:
            chunks.append(chunk)
        return chunks

    async def _predict_chunk(self, chunk: list, results: list) -> None:
        start = time.perf_counter()
        try:
            predictions = await self.batcher.predict(
                concat([X for _, X, _ in chunk]), frozenset().union(*(outputs for _, _, outputs in chunk))
            )
        except Exception as exc:
            if len(chunk) == 1:
                results[chunk[0][0]] = exc
                return
            # As the batcher does with batch mates: each alone, so only the culprit fails.
            logger.warning("%d requests predicted together failed (%s); predicting each alone", len(chunk), exc)
            await asyncio.gather(*[self._predict_chunk([member], results) for member in chunk])
            return
        seconds = time.perf_counter() - start
        datatypes = {name: spec["datatype"] for name, spec in self.output_types.items()}
        row = 0
        for i, X, outputs in chunk:
            n = len(X)
            results[i] = [Output(name, datatypes[name], predictions[name][row : row + n]) for name in outputs]
            row += n
            self._predict_seconds(seconds)
            if self._observe_predict_seconds is not None:
                self._observe_predict_seconds(seconds)

    async def close_when_idle(self, poll_s: float = 0.05) -> None:
        """Once no request is in flight on it (a retired version finishes what it was given),
        stop its predict thread and let go of the estimator, so its memory is freed."""
        while self.in_flight or not self.batcher.idle:
            await asyncio.sleep(poll_s)
        self._executor.shutdown(wait=False)
        # Break the predictor <-> batcher cycle: refcounting frees the model at once, even when the
        # garbage collector keeps its startup objects frozen.
        self.batcher = self.engine = self.estimator = None

    def prepare(self, request: V1Request | V2Request, rows: int | None = None) -> tuple[object, list[str]]:
        """The checked ``X`` and the output names a request asks for (``rows``: its count, if known)."""
        rows = _rows(request) if rows is None else rows
        if self.max_request_rows is not None and rows > self.max_request_rows:
            raise RequestTooLarge(
                f"the request has {rows} rows; this server takes at most {self.max_request_rows} (--max_request_rows)"
            )
        outputs = request.outputs or [PREDICT]
        unknown = [name for name in outputs if name not in self.output_types]
        if unknown:
            raise request.unknown_outputs(unknown, type(self.estimator).__name__, list(self.output_types))
        if isinstance(request, V2Request):
            return self.schema.from_tensors(request.inputs), outputs
        if request.columnar:
            raise InvalidInput('missing "instances": this model takes rows, {"instances": [[...], ...]}')
        return self.schema.from_rows(request.instances), outputs

    def predict_batch(self, X, outputs: frozenset) -> dict[str, np.ndarray]:
        """The outputs for a whole batch: in the predict thread, or on the event loop when the
        engine is that fast."""
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
        except ValueError as exc:
            # Shape and types were checked already; a ValueError left is about the values
            # themselves (say, a category the fitted encoder has never seen): the client's to fix.
            raise InvalidInput(f"the model rejected the input: {exc}") from exc
        for name, values in result.items():
            if len(values) != len(X):
                # Never split a wrong-length answer across batch mates: the batcher retries each
                # request alone, and this request alone fails.
                raise ModelFailure(f"the model returned {len(values)} {name} values for {len(X)} rows")
        if self.drift is not None:
            try:
                self.drift.observe(X, result.get(PREDICT))
            except Exception:  # monitoring must never fail a request
                logger.exception("drift: binning a batch failed")
        return result


def quiet_sklearn() -> None:
    """Predict-thread setup: our schema check already did scikit-learn's validation work. (An ONNX
    model's server never imports scikit-learn.)"""
    if "sklearn" not in sys.modules:
        return
    import sklearn

    sklearn.set_config(assume_finite=True, skip_parameter_validation=True)
    # Estimators fitted on DataFrames warn on every ndarray call; the columns are in fit order.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")


def _engine_name(engine, estimator) -> str:
    if engine is estimator:
        return "ONNX Runtime" if isinstance(estimator, OnnxModel) else "scikit-learn"
    return getattr(engine, "name", type(engine).__name__)


def _layout(X) -> tuple:
    """What must match for checked inputs to be concatenated: an array's dtype and row shape, a
    column batch's or a DataFrame's columns."""
    if isinstance(X, np.ndarray):
        return ("array", X.dtype.str, X.shape[1:])
    if isinstance(X, dict):  # schema.ColumnBatch
        return ("columns", *((name, X[name].dtype.str) for name in X))
    dtypes = getattr(X, "dtypes", None)  # a DataFrame
    if dtypes is not None:
        return ("frame", *((str(name), str(dtype)) for name, dtype in dtypes.items()))
    return (type(X).__name__, id(X))  # unknown: never concatenated with another


def _rows(request: V1Request | V2Request) -> int:
    """How many rows a decoded request carries, before any check of its contents."""
    if isinstance(request, V1Request):
        return len(request.instances) if isinstance(request.instances, (list, np.ndarray)) else 1
    inputs = request.inputs
    if len(inputs) == 1:  # the common case, without a generator (a Kafka poll asks it per message)
        data = inputs[0].data
        return data.shape[0] if data.ndim else 1
    return max((t.data.shape[0] if t.data.ndim else 1 for t in inputs), default=0)
