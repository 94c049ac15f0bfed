"""Any ONNX graph (a PyTorch, TensorFlow, PaddlePaddle, XGBoost or LightGBM export), served as the
tensors it declares: ``GenericOnnxModel``.

Its V2 inputs are the graph's inputs by name, with their element types and shapes (a dynamic
dimension is ``-1``, its symbolic name kept), its outputs every tensor output of the graph. A
request is checked against the graph here (``feeds``) so that nothing the client got wrong
reaches ONNX Runtime, whose own errors would be 500s: an unknown or missing input, a datatype
that does not cast without loss, a wrong rank, a fixed dimension that differs, one symbolic
dimension given two sizes. ``run`` computes only the outputs asked for.

Chosen for every ``model.onnx`` whose ``metadata.json`` does not say it came from
``python -m model_server.export`` (that one keeps the estimator's face, ``model.py``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ArtifactError, InvalidInput

logger = logging.getLogger(__name__)

# ONNX element type (as ONNX Runtime names it) -> V2 datatype. BF16 is left out: ONNX Runtime's
# Python API cannot hand a bfloat16 tensor back as an array (1.32), so a graph using it is refused.
ONNX_DATATYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}
NUMPY = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


@dataclass(frozen=True)
class SessionSettings:
    """How ONNX Runtime runs a graph: the flags --onnx_intra_op_threads, --onnx_inter_op_threads,
    --onnx_graph_optimization and --onnx_warmup."""

    intra_op_threads: int = 1  # one per worker: batches are small, and threads would contend
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    warmup: bool = False  # one run on zeros at load, before the model is ready

    def session_options(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = self.inter_op_threads
        levels = onnxruntime.GraphOptimizationLevel
        options.graph_optimization_level = {
            "disable": levels.ORT_DISABLE_ALL,
            "basic": levels.ORT_ENABLE_BASIC,
            "extended": levels.ORT_ENABLE_EXTENDED,
            "all": levels.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        return options


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, V2 datatype, shape (None for a dynamic dimension) and the
    symbolic names of its dynamic dimensions (None where the graph gives none)."""

    name: str
    datatype: str
    shape: tuple[int | None, ...]
    symbols: tuple[str | None, ...]

    @classmethod
    def of(cls, node, where: str) -> TensorSpec:
        datatype = ONNX_DATATYPES.get(node.type)
        if datatype is None:
            raise ArtifactError(
                f"{where} '{node.name}' is {node.type}: the V2 protocol carries tensors of "
                f"{', '.join(sorted(set(ONNX_DATATYPES.values())))}"
            )
        dims = list(node.shape) if node.shape is not None else []
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in dims)
        symbols = tuple(d if isinstance(d, str) and d and d != "?" else None for d in dims)
        return cls(node.name, datatype, shape, symbols)

    @property
    def dynamic_first(self) -> bool:
        return bool(self.shape) and self.shape[0] is None

    def metadata(self) -> dict:
        spec = {"name": self.name, "datatype": self.datatype, "shape": [-1 if d is None else d for d in self.shape]}
        named = {str(i): s for i, s in enumerate(self.symbols) if s is not None}
        if named:
            spec["parameters"] = {"dimension_names": named}
        return spec


def load_generic(path: Path, settings: SessionSettings | None = None) -> GenericOnnxModel:
    import onnxruntime

    settings = settings or SessionSettings()
    session = onnxruntime.InferenceSession(str(path), settings.session_options(), providers=["CPUExecutionProvider"])
    return GenericOnnxModel(session, settings)


class GenericOnnxModel:
    """A graph's inputs and outputs, the check of a request against them, and the run."""

    def __init__(self, session, settings: SessionSettings | None = None):
        import onnxruntime

        self.session = session
        # A run that fails on a client's values is answered 400 with the reason; ONNX Runtime's
        # own error log of it would only repeat it.
        self.run_options = onnxruntime.RunOptions()
        self.run_options.log_severity_level = 4
        self.settings = settings or SessionSettings()
        self.inputs = [TensorSpec.of(node, "input") for node in session.get_inputs()]
        self.outputs = []
        for node in session.get_outputs():
            if node.type in ONNX_DATATYPES:
                self.outputs.append(TensorSpec.of(node, "output"))
            else:  # a ZipMap's sequence of maps, say: no V2 tensor can carry it
                logger.warning("output %s is %s, not a tensor: it is not served", node.name, node.type)
        if not self.outputs:
            raise ArtifactError("the graph has no tensor output to serve")
        self.input_by_name = {spec.name: spec for spec in self.inputs}
        self.output_by_name = {spec.name: spec for spec in self.outputs}
        # Concurrent requests share one run only when every tensor's first dimension is the batch.
        self.batchable = all(spec.dynamic_first for spec in (*self.inputs, *self.outputs))

    def predict(self, X):  # ModelArtifact asks every model for one
        raise NotImplementedError("a generic ONNX graph is served by OnnxTensorPredictor")

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

        try:
            results = self.session.run(outputs, feeds, self.run_options)
        except (InvalidArgument, Fail, RuntimeException) as exc:
            # The request fitted the declared graph, yet a node refused it (a reshape of a length
            # the graph cannot take, an index out of range): the values are the client's to fix.
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidInput(f"ONNX Runtime rejected the input: {first}"[:500]) from exc
        return dict(zip(outputs, results, strict=True))

    def zeros(self) -> dict[str, np.ndarray]:
        """Feeds of the declared shapes, dynamic dimensions 1: the warm-up run."""
        feeds = {}
        for spec in self.inputs:
            shape = tuple(1 if d is None else d for d in spec.shape)
            feeds[spec.name] = (
                np.full(shape, "", dtype=object) if spec.datatype == "BYTES" else np.zeros(shape, NUMPY[spec.datatype])
            )
        return feeds

    def warm_up(self) -> float:
        """One run on zeros of every output; its seconds."""
        start = time.perf_counter()
        self.session.run([spec.name for spec in self.outputs], self.zeros(), self.run_options)
        return time.perf_counter() - start

    # -- checking a request against the graph ---------------------------------------------------

    def feeds(self, tensors: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """``{name: (datatype, array)}`` -> the checked feeds, each cast to its input's type."""
        unknown = sorted(set(tensors) - set(self.input_by_name))
        if unknown:
            raise InvalidInput(f"unknown inputs {unknown}; this model takes {list(self.input_by_name)}")
        missing = [spec.name for spec in self.inputs if spec.name not in tensors]
        if missing:
            raise InvalidInput(f"missing inputs {missing}; this model takes {list(self.input_by_name)}")
        feeds, sizes = {}, {}
        for spec in self.inputs:
            datatype, array = tensors[spec.name]
            check_shape(spec, array.shape, sizes)
            feeds[spec.name] = cast(spec, datatype, array)
        return feeds


def check_shape(spec: TensorSpec, shape: tuple[int, ...], sizes: dict[str, tuple[int, str]]) -> None:
    declared = [-1 if d is None else d for d in spec.shape]
    if len(shape) != len(spec.shape):
        raise InvalidInput(
            f"input '{spec.name}': shape {list(shape)} has {len(shape)} dimensions, the model takes "
            f"{len(spec.shape)} ({declared})"
        )
    for axis, (size, fixed, symbol) in enumerate(zip(shape, spec.shape, spec.symbols, strict=True)):
        if fixed is not None and size != fixed:
            raise InvalidInput(
                f"input '{spec.name}': dimension {axis} is {size}, the model takes {fixed} (shape {declared})"
            )
        if symbol is not None:
            seen = sizes.setdefault(symbol, (size, spec.name))
            if seen[0] != size:
                raise InvalidInput(
                    f"input '{spec.name}': dimension {axis} ('{symbol}') is {size}, but input '{seen[1]}' "
                    f"gives '{symbol}' {seen[0]}"
                )


def cast(spec: TensorSpec, datatype: str, array: np.ndarray) -> np.ndarray:
    """``array`` (sent as ``datatype``) as the input's type, when no value changes on the way: any
    float width to another (the rounding every JSON float takes), integers to a wider or equal
    type or to one whose range holds every value, integers and booleans to floats that hold them
    exactly. Anything else (fractions to integers, numbers to strings) is refused."""
    target = spec.datatype
    if datatype == target:
        return _strings(spec.name, array) if target == "BYTES" else array
    refused = InvalidInput(f"input '{spec.name}' is {target}: {datatype} data does not convert to it without loss")
    if target == "BYTES" or datatype == "BYTES":
        raise refused
    to = np.dtype(NUMPY[target])
    if to.kind == "f":
        if array.dtype.kind == "f":
            with np.errstate(over="ignore"):
                converted = array.astype(to)
            if not np.array_equal(np.isfinite(converted), np.isfinite(array)):
                raise InvalidInput(f"input '{spec.name}' is {target}: a value lies outside its range")
            return converted
        converted = array.astype(to)
        if array.dtype.kind != "b" and array.size and not np.array_equal(converted.astype(array.dtype), array):
            raise InvalidInput(f"input '{spec.name}' is {target}: an integer is not exactly representable in it")
        return converted
    if to.kind == "b":
        raise refused
    if array.dtype.kind == "f":
        raise refused  # fractional data for an integer input
    if array.size and array.dtype.kind in "iu":
        limits = np.iinfo(to)
        if array.min() < limits.min or array.max() > limits.max:
            raise InvalidInput(f"input '{spec.name}' is {target}: its values must lie in [{limits.min}, {limits.max}]")
    return array.astype(to)


def _strings(name: str, array: np.ndarray) -> np.ndarray:
    """BYTES as ONNX Runtime takes strings: str elements (binary data arrives as bytes)."""
    flat = array.ravel()
    if all(isinstance(v, str) for v in flat):
        return array
    try:
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in flat], dtype=object).reshape(
            array.shape
        )
    except UnicodeDecodeError:
        raise InvalidInput(f"input '{name}': a BYTES element is not UTF-8 (ONNX string tensors hold text)") from None
