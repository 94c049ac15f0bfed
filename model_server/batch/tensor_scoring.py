"""Batch scoring of a generic ONNX graph (``core/onnx/tensor_predictor.py``): one input column per
graph input, one output column per graph output.

- An input of shape ``[N]`` is a column of scalars; an N-D input ``[N, d1, d2, ...]`` is a column
  of (nested) lists, each row holding d1 x d2 x ... values in row-major order (Parquet ``list``
  or ``fixed_size_list``, nested or flat). One dynamic dimension past the first is inferred from
  the rows' length (the same for every row of a chunk); more than one cannot be told from a list.
- An output of shape ``[N]`` is a column of scalars; an N-D output a column of flat lists
  (``fixed_size_list`` where every dimension past the first is fixed), its row's values in
  row-major order. ``--outputs predict`` (the default) writes every graph output, ``label`` the
  class label of the probabilities (``metadata.json`` ``class_labels``), ``predict_proba`` the
  probabilities output alone.
- Only a graph batched along its first dimension (dynamic in every input and output) can be
  scored in chunks of rows; any other is refused at start, saying so.

A row the graph cannot take (a null, a list of the wrong length, a value that does not convert)
goes to the errors file with the server's reason, as for estimators.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.codec import LABEL, PREDICT
from ..core.errors import InvalidInput
from ..core.onnx.generic import NUMPY, TensorSpec
from ..core.onnx.tensor_predictor import Feeds, OnnxTensorPredictor
from .scoring import Rejection, Scored, _arrow_of

ARROW_TYPES = {
    "BOOL": pa.bool_(),
    "UINT8": pa.uint8(),
    "UINT16": pa.uint16(),
    "UINT32": pa.uint32(),
    "UINT64": pa.uint64(),
    "INT8": pa.int8(),
    "INT16": pa.int16(),
    "INT32": pa.int32(),
    "INT64": pa.int64(),
    "FP16": pa.float16(),
    "FP32": pa.float32(),
    "FP64": pa.float64(),
    "BYTES": pa.string(),
}


class TensorScorer:
    """Scores chunks of columns with a generic ONNX graph; the ``Scorer`` interface the runner uses."""

    def __init__(self, predictor: OnnxTensorPredictor, outputs=(PREDICT,), keep_columns=(), positional=False):
        model = predictor.model
        if not model.batchable:
            fixed = [s.name for s in (*model.inputs, *model.outputs) if not s.dynamic_first]
            raise InvalidInput(
                f"batch scoring takes a graph batched along its first dimension; {fixed} of this graph are not "
                "(their first dimension is fixed, or they are scalars)"
            )
        self.predictor = predictor
        self.keep_columns = tuple(keep_columns)
        names = []
        for name in outputs:
            if name == PREDICT:
                names += [spec.name for spec in model.outputs]
            elif predictor.proba_name is None:
                raise InvalidInput(f"--outputs {name}: metadata.json declares no class_labels for this graph")
            else:
                names.append(predictor.label_name if name == LABEL else predictor.proba_name)
        self.outputs = list(dict.fromkeys(names))
        self.output_specs = {name: predictor.output_types[name] for name in self.outputs}

    def feature_columns(self, names: list[str], where: str = "the input") -> list[str]:
        wanted = [spec.name for spec in self.predictor.model.inputs]
        missing = [name for name in [*self.keep_columns, *wanted] if name not in names]
        if missing:
            raise InvalidInput(f"{where} has no column {missing}; the graph takes inputs {wanted}")
        return wanted

    def score_columns(self, columns, features, n_rows, first_row=0, file="", refused=None) -> Scored:
        problems = dict(refused or {})
        tensors = {}
        for spec in self.predictor.model.inputs:
            tensors[spec.name] = _column_tensor(spec, columns[spec.name], n_rows, problems)
        keep = np.ones(n_rows, dtype=bool)
        keep[list(problems)] = False
        good = np.flatnonzero(keep)
        predictions, good = self._predict(tensors, good, problems)
        table = self._table(columns, good, predictions, n_rows)
        rejected = [Rejection(first_row + i, file, column, reason) for i, (column, reason) in sorted(problems.items())]
        return Scored(table, rejected)

    def _predict(self, tensors, rows: np.ndarray, problems: dict):
        if len(rows) == 0:
            return None, rows
        try:
            chosen = {name: (datatype, select(rows)) for name, (datatype, select) in tensors.items()}
            feeds = Feeds(self.predictor.model.feeds(chosen))
            return self.predictor.predict_batch(feeds, frozenset(self.outputs)), rows
        except InvalidInput as exc:
            if len(rows) == 1:
                problems[int(rows[0])] = (None, str(exc))
                return None, rows[:0]
        half = len(rows) // 2
        parts = [self._predict(tensors, part, problems) for part in (rows[:half], rows[half:])]
        kept = [(p, r) for p, r in parts if p is not None and len(r)]
        if not kept:
            return None, rows[:0]
        return {name: np.concatenate([p[name] for p, _ in kept]) for name in kept[0][0]}, np.concatenate(
            [r for _, r in kept]
        )

    def _table(self, columns, good, predictions, n_rows) -> pa.Table:
        fields, arrays = [], []
        for name in self.keep_columns:
            column = columns[name]
            if not isinstance(column, (pa.Array, pa.ChunkedArray)):
                column = _arrow_of(column)
            column = column if len(good) == n_rows else column.take(pa.array(good, pa.int64()))
            fields.append(pa.field(name, column.type))
            arrays.append(column)
        for name, spec in self.output_specs.items():
            kind = ARROW_TYPES[spec["datatype"]]
            inner = spec["shape"][1:]
            values = predictions[name] if predictions else np.empty((0, *[max(d, 0) for d in inner]))
            flat = pa.array(np.asarray(values).reshape(-1), type=kind)
            if not inner:
                array = flat
            elif all(d >= 0 for d in inner):
                array = pa.FixedSizeListArray.from_arrays(flat, math.prod(inner))
            else:
                width = math.prod(values.shape[1:]) if len(values) else 0
                array = pa.ListArray.from_arrays(pa.array(np.arange(len(values) + 1) * width, pa.int32()), flat)
            fields.append(pa.field(name, array.type))
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _column_tensor(spec: TensorSpec, column, n_rows: int, problems: dict):
    """(datatype, rows -> array of those rows in the input's shape); rows that cannot be read go to
    ``problems``. Nested lists give one dimension a level; a flat list is the row in row-major order."""
    if isinstance(column, np.ndarray):
        column = _arrow_of(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    rows_of = np.arange(n_rows)
    levels = []  # per nesting level: each list's length and the row it belongs to
    leaves = column
    while _is_list(leaves.type):
        lengths = pc.list_value_length(leaves).fill_null(-1).to_numpy(zero_copy_only=False)
        levels.append((lengths, rows_of))
        rows_of = rows_of[pc.list_parent_indices(leaves).to_numpy(zero_copy_only=False)]
        leaves = pc.list_flatten(leaves)
    name, inner = spec.name, list(spec.shape[1:])
    if not inner and levels:
        raise InvalidInput(f"column '{name}' holds lists; input '{name}' takes one value a row")
    if inner and len(levels) == len(inner):
        for axis, (lengths, owners) in enumerate(levels):
            size = inner[axis] if inner[axis] is not None else _common(lengths, owners, problems)
            for i in np.unique(owners[lengths != size]):
                found = lengths[owners == i]
                shown = found[found != size][0]
                reason = f"input '{name}': dimension {axis + 1} is {shown}, the model takes {size}"
                problems.setdefault(int(i), (name, reason if shown >= 0 else f"input '{name}': a null list"))
            inner[axis] = size
    elif inner and len(levels) == 1:
        if sum(d is None for d in inner) > 1:
            raise InvalidInput(
                f"column '{name}' is a flat list; input '{name}' has {spec.metadata()['shape']}: send nested lists "
                "(one level a dimension) for more than one dynamic dimension past the first"
            )
        if None in inner:  # one dynamic dimension: the rows' common length says it
            fixed = math.prod(d for d in inner if d is not None)
            inner[inner.index(None)] = max(_common(levels[0][0], levels[0][1], problems), 0) // fixed
    elif inner:
        raise InvalidInput(
            f"column '{name}' nests lists {len(levels)} deep; input '{name}' has {len(inner)} dimensions past the first"
        )
    nulls = np.asarray(leaves.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    for i in np.unique(rows_of[nulls]):
        problems.setdefault(int(i), (name, f"input '{name}': a null value"))
    expected = math.prod(inner)
    counts = np.bincount(rows_of, minlength=n_rows)
    for i in np.flatnonzero(counts != expected):
        reason = f"input '{name}' takes {expected} values a row ({inner}), this row has {counts[i]}"
        problems.setdefault(int(i), (name, reason))
    values = _leaf_values(leaves)
    datatype = _datatype(values, spec)

    def select(rows: np.ndarray) -> np.ndarray:
        mask = np.isin(rows_of, rows)
        return values[mask].reshape(len(rows), *inner)

    return datatype, select


def _is_list(kind) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)


def _common(lengths: np.ndarray, owners: np.ndarray, problems: dict) -> int:
    """The most common list length among rows not refused already (a dynamic dimension's size)."""
    usable = lengths[~np.isin(owners, list(problems))] if problems else lengths
    usable = usable[usable >= 0]
    if not len(usable):
        return 0
    values, counts = np.unique(usable, return_counts=True)
    return int(values[np.argmax(counts)])


def _leaf_values(leaves: pa.Array) -> np.ndarray:
    kind = leaves.type
    if pa.types.is_dictionary(kind):
        leaves = leaves.dictionary_decode()
        kind = leaves.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.asarray(leaves.to_numpy(zero_copy_only=False), dtype=object)
    if leaves.null_count:  # the rows are refused; any value stands in for theirs
        leaves = leaves.fill_null(False if pa.types.is_boolean(kind) else 0)
    return leaves.to_numpy(zero_copy_only=False)


def _datatype(values: np.ndarray, spec: TensorSpec) -> str:
    if values.dtype == object:
        return "BYTES"
    for datatype, dtype in NUMPY.items():
        if datatype != "BYTES" and values.dtype == dtype:
            return datatype
    raise InvalidInput(f"column '{spec.name}' is {values.dtype}; input '{spec.name}' is {spec.datatype}")
