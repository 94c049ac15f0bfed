"""``OnnxTensorPredictor``: a generic ONNX graph (``generic.py``) served through the data plane, with
the face ``core.predictor.Predictor`` shows it (``infer``, ``prepare``, ``predict_batch``,
``inputs_metadata``, ``outputs_metadata``, ``platform``, ``version``, ``close_when_idle``).

V2 requests carry the graph's inputs by name; their outputs are every graph output unless the
request names some (only those are computed). V1 ``instances`` are the rows of a one-input graph,
or objects of named inputs; V1's ``predictions`` are the graph's first output, and, when
``metadata.json`` declares ``class_labels`` for a probabilities output, ``probabilities`` and
``labels`` answer as for a classifier (V2: a ``label`` output).

Concurrent requests share one run (``MicroBatcher``, concatenated along the first dimension) only
when that dimension is dynamic in every input and output, and only with requests of the same
other dimensions and types: a batcher per such signature. Any other graph runs each request alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..artifact import ModelArtifact
from ..batching import MicroBatcher
from ..codec import LABEL, PREDICT, PROBA, Output, V1Request, V2Request
from ..errors import ArtifactError, InvalidInput, ModelFailure, RequestTooLarge
from ..metrics import BATCH_ROWS, PREDICT_SECONDS
from .generic import GenericOnnxModel

logger = logging.getLogger(__name__)

# A run that takes less than this on average goes on the event loop: a thread handoff would cost more.
INLINE_SECONDS = 1e-4
# Batchers kept for distinct request signatures (shapes past the batch dimension); the oldest goes first.
MAX_SIGNATURES = 64
# Most input elements in one batched run. Batching pays for the per-call cost of small runs (a tree
# ensemble's rows); past the caches a larger run only costs more per row (a convolutional
# network on 8 images of 3x48x192 took 10 ms, on 128 images 23 ms per 8), so requests that large
# run alone.
MAX_BATCH_ELEMENTS = 1 << 16


class Feeds(dict):
    """A request's checked feeds by input name; ``len()`` is its rows (the first dimension)."""

    def __len__(self) -> int:
        first = next(iter(self.values()), None)
        return first.shape[0] if first is not None and first.ndim else 1


class OnnxTensorPredictor:
    platform = "onnxruntime_onnx"

    def __init__(
        self,
        artifact: ModelArtifact,
        max_batch_size: int = 512,
        max_batch_wait_ms: float = 0.0,
        observe_predict_seconds: Callable[[float], None] | None = None,
        max_request_rows: int | None = None,
        model_name: str = "",
        version: str | None = None,
        **_ignored,  # the estimator-only options (backend)
    ):
        self.artifact = artifact
        self.model: GenericOnnxModel = artifact.estimator
        self.estimator = self.model
        self.version = version or artifact.version
        metadata = artifact.metadata
        if version and metadata.version not in ("1", version):
            raise ArtifactError(
                f"{artifact.path.parent}: metadata.json says version {metadata.version}, its directory says {version}"
            )
        self.descriptions = _descriptions(self.model, metadata)
        self.proba_name, self.class_labels = _probabilities(self.model, metadata)
        self.output_types = {spec.name: spec.metadata() for spec in self.model.outputs}
        # The class labels of the probabilities, as an output of their own: "label", unless the graph
        # has an output of that name (XGBoost's, via onnxmltools), then "<probabilities>_label".
        self.label_name = None
        if self.class_labels is not None:
            self.label_name = LABEL if LABEL not in self.model.output_by_name else f"{self.proba_name}_label"
            self.output_types[self.label_name] = {"name": self.label_name, "datatype": "BYTES", "shape": [-1]}
        self.max_request_rows = max_request_rows
        self.max_batch_size = max_batch_size
        self._max_wait_s = max_batch_wait_ms / 1000
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="predict")
        self._batchers: dict[tuple, MicroBatcher] = {}
        self._observe_rows = BATCH_ROWS.labels(model_name, self.version).observe
        self._predict_seconds = PREDICT_SECONDS.labels(model_name, self.version).observe
        self._observe_predict_seconds = observe_predict_seconds
        self._run_seconds = 1.0  # running average; the first runs go to the predict thread
        self.in_flight = 0
        if self.model.settings.warmup:
            try:
                seconds = self.model.warm_up()
            except Exception as exc:  # zeros of size 1 may mean nothing to a graph (too short for a filter)
                logger.warning(
                    "%s: the warm-up run on zeros failed (%s); warm it with real requests in warmup.jsonl",
                    artifact.path,
                    str(exc).splitlines()[0][:300],
                )
            else:
                self._run_seconds = seconds
                logger.info("warm-up run on zeros took %.1f ms", seconds * 1000)

    @classmethod
    def from_artifact(cls, artifact: ModelArtifact, **options) -> OnnxTensorPredictor:
        predictor = cls(artifact, **options)
        model = predictor.model
        logger.info(
            "loaded %s (%s, sha256 %s, version %s, inputs %s, outputs %s, %s)",
            artifact.path,
            artifact.metadata.name or "generic ONNX graph",
            artifact.sha256[:12],
            predictor.version,
            [spec.metadata()["shape"] for spec in model.inputs],
            [spec.name for spec in model.outputs],
            "batched along the first dimension" if model.batchable else "each request alone",
        )
        return predictor

    # -- metadata ------------------------------------------------------------------------------

    def inputs_metadata(self) -> list[dict]:
        return [self._described(spec.metadata()) for spec in self.model.inputs]

    def outputs_metadata(self) -> list[dict]:
        return [self._described(dict(spec)) for spec in self.output_types.values()]

    def _described(self, spec: dict) -> dict:
        description = self.descriptions.get(spec["name"])
        if description:
            spec["parameters"] = {**spec.get("parameters", {}), "description": description}
        return spec

    def probe(self) -> Feeds | None:
        """What the repository runs before a version takes traffic: zeros when --onnx_warmup asks
        for them (they already ran at load), else nothing (zeros may mean nothing to a graph)."""
        return None

    # -- predicting ----------------------------------------------------------------------------

    async def infer(self, request: V1Request | V2Request) -> list[Output]:
        self.in_flight += 1
        try:
            feeds, outputs = self.prepare(request)
            start = time.perf_counter()
            wanted = frozenset(outputs)
            if self.model.batchable:
                results = await self._batcher_for(feeds).predict(feeds, wanted)
            elif self._run_seconds < INLINE_SECONDS:
                results = self.predict_batch(feeds, wanted)
            else:
                loop = asyncio.get_running_loop()
                results = await loop.run_in_executor(self._executor, self.predict_batch, feeds, wanted)
            seconds = time.perf_counter() - start
        finally:
            self.in_flight -= 1
        self._predict_seconds(seconds)
        if self._observe_predict_seconds is not None:
            self._observe_predict_seconds(seconds)
        if isinstance(request, V1Request):
            return self._v1_outputs(request, results)
        return [Output(name, self.output_types[name]["datatype"], results[name]) for name in outputs]

    async def infer_many(self, requests: list) -> list[list[Output] | Exception]:
        """Predictor.infer_many's face: each request through infer, concurrently, so that the
        batcher of each feed signature predicts their rows together."""
        return await asyncio.gather(*[self.infer(request) for request in requests], return_exceptions=True)

    def _v1_outputs(self, request: V1Request, results: dict) -> list[Output]:
        first = self.model.outputs[0].name
        answered = [Output(PREDICT, self.output_types[first]["datatype"], results[first])]
        if PROBA in request.outputs:
            answered.append(Output(PROBA, "FP64", results[self.proba_name].astype(np.float64)))
        if LABEL in request.outputs:
            answered.append(Output(LABEL, "BYTES", results[self.label_name]))
        return answered

    def _batcher_for(self, feeds: Feeds) -> MicroBatcher:
        signature = tuple((name, array.dtype.str, array.shape[1:]) for name, array in feeds.items())
        batcher = self._batchers.get(signature)
        if batcher is None:
            if len(self._batchers) >= MAX_SIGNATURES:
                oldest = next((key for key, b in self._batchers.items() if b.idle), None)
                if oldest is not None:
                    del self._batchers[oldest]
            per_row = sum(math.prod(shape) for _, _, shape in signature) or 1
            batcher = self._batchers[signature] = MicroBatcher(
                self.predict_batch,
                self._executor,
                max(1, min(self.max_batch_size, MAX_BATCH_ELEMENTS // per_row)),
                self._max_wait_s,
                inline_rows=self.max_batch_size,
                inline_ok=lambda X: self._run_seconds < INLINE_SECONDS,
                observe_rows=self._observe_rows,
            )
        return batcher

    async def close_when_idle(self, poll_s: float = 0.05) -> None:
        while self.in_flight or not all(b.idle for b in self._batchers.values()):
            await asyncio.sleep(poll_s)
        self._executor.shutdown(wait=False)
        self._batchers = {}
        self.model = self.estimator = None

    def prepare(self, request: V1Request | V2Request) -> tuple[Feeds, list[str]]:
        """The checked feeds and the outputs (graph output names, or ``label``) a request asks for."""
        if isinstance(request, V2Request):
            tensors = {}
            for tensor in request.inputs:
                if tensor.name in tensors:
                    raise InvalidInput(f"input '{tensor.name}' is given twice")
                tensors[tensor.name] = (tensor.datatype, tensor.data)
            outputs = request.outputs or [spec.name for spec in self.model.outputs]
            unknown = [name for name in outputs if name not in self.output_types]
            if unknown:
                raise request.unknown_outputs(unknown, "this graph", list(self.output_types))
        else:
            if request.columnar:
                tensors = {name: _v1_array(name, value) for name, value in request.instances.items()}
            else:
                tensors = self._v1_tensors(request.instances)
            outputs = [self.model.outputs[0].name]
            if PROBA in request.outputs or LABEL in request.outputs:
                if self.proba_name is None:
                    which = "probabilities" if PROBA in request.outputs else "labels"
                    raise InvalidInput(
                        f'parameter "{which}" is not available: metadata.json declares no class_labels '
                        "for a probabilities output of this graph"
                    )
                outputs.append(self.proba_name)
                if LABEL in request.outputs:
                    outputs.append(self.label_name)
        feeds = Feeds(self.model.feeds(tensors))
        rows = len(feeds)
        if self.max_request_rows is not None and rows > self.max_request_rows:
            raise RequestTooLarge(
                f"the request has {rows} rows; this server takes at most {self.max_request_rows} (--max_request_rows)"
            )
        return feeds, list(dict.fromkeys(outputs))

    def _v1_tensors(self, instances: object) -> dict[str, tuple[str, np.ndarray]]:
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list')
        names = [spec.name for spec in self.model.inputs]
        if not self.model.batchable:
            # Not a graph of rows: one instance names every input's whole tensor, for one run.
            if len(instances) != 1 or not isinstance(instances[0], dict):
                raise InvalidInput(
                    f"this graph's inputs {names} are not batched along their first dimension: send one "
                    f'instance naming every input\'s whole tensor, {{"instances": [{{"{names[0]}": ...}}]}}'
                )
            return {key: _v1_array(key, value) for key, value in instances[0].items()}
        if all(isinstance(row, dict) for row in instances):
            keys = set(instances[0])
            for i, row in enumerate(instances):
                if set(row) != keys:
                    raise InvalidInput(f"instance {i} names {sorted(row)}, instance 0 {sorted(keys)}")
            return {key: _v1_array(key, [row[key] for row in instances]) for key in instances[0]}
        if len(names) != 1:
            raise InvalidInput(
                f'this graph takes several inputs {names}: send instances as objects like {{"{names[0]}": ...}}'
            )
        return {names[0]: _v1_array(names[0], instances)}

    def predict_batch(self, X: Feeds, outputs: frozenset) -> dict[str, np.ndarray]:
        model = self.model
        graph_outputs = [spec.name for spec in model.outputs if spec.name in outputs]
        labelled = self.label_name is not None and self.label_name in outputs
        if labelled and self.proba_name not in graph_outputs:
            graph_outputs.append(self.proba_name)
        start = time.perf_counter()
        results = model.run(dict(X), graph_outputs)
        self._run_seconds = 0.8 * self._run_seconds + 0.2 * (time.perf_counter() - start)
        if labelled:
            results[self.label_name] = self.class_labels[np.argmax(results[self.proba_name], axis=-1)]
            if self.proba_name not in outputs:
                del results[self.proba_name]
        if model.batchable:
            rows = len(X)
            for name, values in results.items():
                if values.ndim == 0 or values.shape[0] != rows:
                    # Never split an answer that is not one row per input row across batch mates.
                    raise ModelFailure(
                        f"the graph answered output {name} of shape {list(values.shape)} for {rows} rows: "
                        "its first dimension is not the batch"
                    )
        return results


def _v1_array(name: str, values: list) -> tuple[str, np.ndarray]:
    try:
        array = np.array(values)
    except (ValueError, TypeError):
        raise InvalidInput(f"input '{name}': the instances are ragged (nested lists of unequal length)") from None
    if array.dtype.kind == "O" and array.size and all(isinstance(v, str) for v in array.ravel()):
        return "BYTES", array
    kind = array.dtype.kind
    if kind == "U":
        return "BYTES", array.astype(object)
    if kind in "biuf":
        return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}[kind], array
    raise InvalidInput(f"input '{name}': the instances hold null, nested or mixed values")


def _descriptions(model: GenericOnnxModel, metadata) -> dict[str, str]:
    descriptions = {}
    for kind, declared, names in (
        ("inputs", metadata.inputs, model.input_by_name),
        ("outputs", metadata.outputs, model.output_by_name),
    ):
        for name, text in (declared or {}).items():
            if name not in names:
                raise ArtifactError(f"metadata.json {kind} describes '{name}': the graph has {list(names)}")
            descriptions[name] = text
    return descriptions


def _probabilities(model: GenericOnnxModel, metadata) -> tuple[str | None, np.ndarray | None]:
    labels = metadata.class_labels
    name = metadata.probabilities
    if labels is None:
        if name is not None:
            raise ArtifactError("metadata.json names a probabilities output but no class_labels for it")
        return None, None
    if name is None:
        candidates = [
            spec for spec in model.outputs if spec.datatype in ("FP16", "FP32", "FP64") and len(spec.shape) == 2
        ]
        if len(candidates) != 1:
            raise ArtifactError(
                'metadata.json has class_labels: say which output they label with "probabilities": "<output name>"'
            )
        name = candidates[0].name
    spec = model.output_by_name.get(name)
    if spec is None:
        raise ArtifactError(
            f"metadata.json probabilities names '{name}': the graph's outputs are {list(model.output_by_name)}"
        )
    if spec.shape and spec.shape[-1] is not None and spec.shape[-1] != len(labels):
        raise ArtifactError(f"metadata.json has {len(labels)} class_labels, output {name} has {spec.shape[-1]} columns")
    return name, np.array(labels, dtype=object)
