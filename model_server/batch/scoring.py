"""One chunk of rows -> the predictor's checked ``X`` -> predictions, and the rows it refuses, with
the reasons the server gives.

The good path is vectorized: the columns become ``X`` through the predictor's ``InputSchema``
(``from_tensors``, as a V2 request's tensors do) and ``Predictor.predict_batch`` predicts the
whole chunk with the fast engines. Only a chunk the schema refuses is looked at value by value
(``InputSchema.value_problem``), its bad rows dropped, and the rest predicted; a chunk the model
itself refuses (a ``ValueError``, say an unknown category) is halved until the refused rows are
alone.

``Scorer`` is also the Python API for frames scored elsewhere (Dask's ``map_partitions``, Spark's
``mapInPandas``, Ray's ``map_batches``): ``scorer(frame)`` returns a frame of the same kind.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..core.codec import LABEL, PREDICT, PROBA, Tensor
from ..core.errors import InvalidInput, RowsRejected
from ..core.predictor import Predictor
from ..core.settings import ModelSettings

TENSOR = "input-0"


@dataclass(frozen=True)
class Rejection:
    row: int  # 0-based in the whole input
    file: str
    column: str | None
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scored:
    table: pa.Table  # the kept columns, then the predictions, in input order; refused rows left out
    rejected: list[Rejection]


class Scorer:
    """Scores frames and chunks with one loaded model.

    ``model``: a model directory (loaded on first use, so that a pickled Scorer is only its
    settings: Dask and Spark ship it to their workers) or a loaded ``Predictor``; ``require_sha256``
    as the command's ``--require_sha256``."""

    def __init__(
        self,
        model: str | Path | Predictor,
        outputs: tuple[str, ...] | list[str] = (PREDICT,),
        keep_columns: tuple[str, ...] | list[str] = (),
        positional: bool = False,
        backend: str = "auto",
        require_sha256: bool = False,
    ):
        self._model = model
        self._predictor = model if isinstance(model, Predictor) else None
        self.outputs = tuple(outputs)
        self.keep_columns = tuple(keep_columns)
        self.positional = positional
        self.backend = backend
        self.require_sha256 = require_sha256
        if self._predictor is not None:
            self._check_outputs()

    def __reduce__(self):
        if self._predictor is not None and self._model is self._predictor:
            raise TypeError("a Scorer made from a loaded Predictor cannot be pickled: pass the model directory")
        settings = (self._model, self.outputs, self.keep_columns, self.positional, self.backend, self.require_sha256)
        return (Scorer, settings)

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            # Drift is the server's: a batch run scores a file whole.
            settings = ModelSettings(backend=self.backend, require_sha256=self.require_sha256, drift=False)
            predictor = settings.load_predictor(self._model)
            if not isinstance(predictor, Predictor):
                raise InvalidInput(
                    f"{self._model} is a generic ONNX graph: score it with "
                    "model_server.batch.tensor_scoring.TensorScorer"
                )
            self._predictor = predictor
            self._check_outputs()
        return self._predictor

    def _check_outputs(self) -> None:
        available = self._predictor.output_types
        unknown = [name for name in self.outputs if name not in available]
        if unknown:
            estimator = type(self._predictor.estimator).__name__
            raise InvalidInput(f"--outputs: {estimator} has no {unknown}; it has {list(available)}")

    # -- columns ---------------------------------------------------------------------------------

    def feature_columns(self, names: list[str], where: str = "the input") -> list[str]:
        """The input columns that feed the model's features, in feature order (a missing one
        stops the run: it is the file's fault, not a row's)."""
        schema = self.predictor.schema
        missing_kept = [name for name in self.keep_columns if name not in names]
        if missing_kept:
            raise InvalidInput(f"{where} has no column {missing_kept} (--keep_columns); it has {names}")
        if self.positional:
            features = [name for name in names if name not in self.keep_columns]
            if schema.n_features is not None and len(features) != schema.n_features:
                raise InvalidInput(
                    f"{where} has {len(features)} columns besides --keep_columns, the model takes "
                    f"{schema.n_features} features (--positional)"
                )
            return features
        if schema.names is None:
            raise InvalidInput(
                "the model has no feature names (no metadata.json features, no feature_names_in_): name them in "
                "metadata.json, or pass --positional to take the input's columns in order"
            )
        missing = [name for name in schema.names if name not in names]
        if missing:
            raise InvalidInput(f"{where} has no column {missing}; the model takes {schema.names}")
        return list(schema.names)

    def output_schema(self, kept: pa.Schema | None = None) -> pa.Schema:
        predictor = self.predictor
        fields = list(kept) if kept is not None else []
        for name in self.outputs:
            if name == PREDICT:
                fields += [pa.field(n, t) for n, t in self._predict_fields()]
            elif name == LABEL:
                fields.append(pa.field(LABEL, pa.string()))
            elif name == PROBA:
                fields += [pa.field(f"{PROBA}_{label}", pa.float64()) for label in predictor.class_labels]
        return pa.schema(fields)

    def _predict_fields(self) -> list[tuple[str, pa.DataType]]:
        spec = self.predictor.output_types[PREDICT]
        dtype = pa.string() if spec["datatype"] == "BYTES" else pa.from_numpy_dtype(_numpy_dtype(spec["datatype"]))
        if len(spec["shape"]) > 1:
            return [(f"{PREDICT}_{j}", dtype) for j in range(spec["shape"][1])]
        return [(PREDICT, dtype)]

    # -- scoring ---------------------------------------------------------------------------------

    def __call__(self, frame):
        """A pandas DataFrame, pyarrow Table or RecordBatch -> the same kind with the kept columns
        and the predictions; raises ``RowsRejected`` naming the first row it refuses."""
        scored = self.score(frame)
        if scored.rejected:
            first = scored.rejected[0]
            raise RowsRejected(f"{len(scored.rejected)} rows refused; row {first.row}: {first.reason}")
        if isinstance(frame, pa.RecordBatch):
            return scored.table.combine_chunks().to_batches()[0] if scored.table.num_rows else scored.table
        if isinstance(frame, pa.Table):
            return scored.table
        result = scored.table.to_pandas()
        result.index = frame.index  # every row was scored
        return result

    def score(self, frame, first_row: int = 0, file: str = "") -> Scored:
        """Score a pandas DataFrame or an Arrow table / record batch (row numbers from ``first_row``)."""
        if not isinstance(frame, (pa.Table, pa.RecordBatch)):
            frame = pa.Table.from_pandas(frame, preserve_index=False)
        names = list(frame.schema.names)
        features = self.feature_columns(names)
        columns = {name: frame.column(name) for name in dict.fromkeys([*self.keep_columns, *features])}
        return self.score_columns(columns, features, frame.num_rows, first_row, file)

    def score_columns(
        self,
        columns: dict,
        features: list[str],
        n_rows: int,
        first_row: int = 0,
        file: str = "",
        refused: dict[int, tuple[str | None, str]] | None = None,
    ) -> Scored:
        """``columns``: name -> pyarrow or numpy array of ``n_rows``; ``features``: the columns
        that feed the model, in feature order; ``refused``: rows already refused (by position)."""
        schema = self.predictor.schema
        kinds = [f.numeric for f in schema.features] if schema.features else [True] * len(features)
        values = [_feature_values(columns[name], numeric, name) for name, numeric in zip(features, kinds, strict=True)]
        problems = dict(refused or {})
        X = None
        if (not problems and all(v.dtype.kind == "f" for v in values)) or not values:
            try:
                X = self._checked_X(values, n_rows)
            except InvalidInput:
                X = None
        if X is None:
            self._row_problems(values, features, first_row, problems)
            keep = np.ones(n_rows, dtype=bool)
            keep[list(problems)] = False
            values = [_numbers(v[keep]) if numeric else v[keep] for v, numeric in zip(values, kinds, strict=True)]
            good = np.flatnonzero(keep)
            X = self._checked_X(values, len(good)) if len(good) else None
        else:
            good = None
        predictions, good = self._predict(X, good, n_rows, first_row, problems)
        table = self._table(columns, good, predictions, n_rows)
        rejected = [Rejection(first_row + i, file, column, reason) for i, (column, reason) in sorted(problems.items())]
        return Scored(table, rejected)

    def _checked_X(self, values: list[np.ndarray], n_rows: int):
        schema = self.predictor.schema
        if schema.numeric and not schema.documents and all(v.dtype.kind == "f" for v in values):
            matrix = np.column_stack(values) if values else np.empty((n_rows, 0))
            return schema.from_tensors([Tensor(TENSOR, "FP64", matrix)])
        features = schema.features
        tensors = [
            Tensor(f.name, "FP64" if v.dtype.kind == "f" else "BYTES", v) for f, v in zip(features, values, strict=True)
        ]
        return schema.from_tensors(tensors)

    def _row_problems(self, values, features, first_row, problems: dict) -> None:
        """Add every refused row to ``problems``, with the first feature at fault, in the server's words."""
        schema = self.predictor.schema
        for j, (column, name) in enumerate(zip(values, features, strict=True)):
            if column.dtype.kind == "f":
                bad = np.isinf(column) if schema.allow_nan else ~np.isfinite(column)
                candidates = np.flatnonzero(bad)
            else:
                candidates = range(len(column))
            for i in candidates:
                if i in problems:
                    continue
                reason = schema.value_problem(j, _python(column[i]), first_row + int(i))
                if reason is not None:
                    problems[int(i)] = (name, reason)

    def _predict(self, X, good, n_rows, first_row, problems):
        """Predictions for ``X`` (rows ``good`` of the chunk, None: all); rows the model refuses
        are added to ``problems``."""
        outputs = frozenset(self.outputs)
        positions = np.arange(n_rows) if good is None else good
        if X is None or len(positions) == 0:
            return None, positions[:0]
        predictor = self.predictor
        try:
            return predictor.predict_batch(X, outputs), positions
        except InvalidInput as exc:
            if len(positions) == 1:
                problems[int(positions[0])] = (None, str(exc))
                return None, positions[:0]
        half = len(positions) // 2
        parts = [(_rows(X, slice(0, half)), positions[:half]), (_rows(X, slice(half, None)), positions[half:])]
        results = [self._predict(part, pos, n_rows, first_row, problems) for part, pos in parts]
        kept = [(p, pos) for p, pos in results if p is not None and len(pos)]
        if not kept:
            return None, positions[:0]
        merged = {name: np.concatenate([p[name] for p, _ in kept]) for name in kept[0][0]}
        return merged, np.concatenate([pos for _, pos in kept])

    def _table(self, columns, good, predictions, n_rows) -> pa.Table:
        kept = {}
        for name in self.keep_columns:
            column = columns[name]
            if not isinstance(column, (pa.Array, pa.ChunkedArray)):
                column = _arrow_of(column)
            kept[name] = column if len(good) == n_rows else column.take(pa.array(good, pa.int64()))
        kept_schema = pa.schema([pa.field(name, kept[name].type) for name in self.keep_columns])
        schema = self.output_schema(kept_schema)
        arrays = list(kept.values())
        for name in self.outputs:
            if name == PREDICT:
                fields = self._predict_fields()
                values = predictions[PREDICT] if predictions else np.empty((0, len(fields)))
                values = np.asarray(values).reshape(len(values), len(fields))
                arrays += [pa.array(values[:, j], type=dtype) for j, (_, dtype) in enumerate(fields)]
            elif name == LABEL:
                arrays.append(pa.array(predictions[LABEL] if predictions else [], type=pa.string()))
            elif name == PROBA:
                proba = predictions[PROBA] if predictions else np.empty((0, len(self.predictor.class_labels)))
                arrays += [pa.array(proba[:, k], type=pa.float64()) for k in range(proba.shape[1])]
        return pa.Table.from_arrays(arrays, schema=schema)


def _feature_values(column, numeric: bool, name: str) -> np.ndarray:
    """A feature column as numpy: float64 for numbers (nulls as NaN), Python objects otherwise.
    Text (CSV, or a string column) feeding a numeric feature is parsed as numbers; a value that
    does not parse stays a string, which the schema refuses for its row."""
    if isinstance(column, np.ndarray):
        return column
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        if not numeric:
            return np.asarray(column.to_pylist(), dtype=object)
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if not numeric:
            return column.to_numpy(zero_copy_only=False)
        try:
            return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            return _parsed_or_text(column)
    raise InvalidInput(f"column '{name}' is {kind}; the model takes {'numbers' if numeric else 'strings'}")


def _parsed_or_text(column: pa.Array) -> np.ndarray:
    out = np.empty(len(column), dtype=object)
    for i, text in enumerate(column.to_pylist()):
        if text is None:
            out[i] = None
            continue
        try:
            out[i] = float(text)
        except ValueError:
            out[i] = text
    return out


def _numbers(values: np.ndarray) -> np.ndarray:
    """The accepted values of a numeric feature (numbers, booleans, None where NaN is allowed)."""
    if values.dtype.kind == "f":
        return values
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _python(value):
    return value.item() if isinstance(value, np.generic) and not isinstance(value, np.floating) else value


def _rows(X, index: slice):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def _arrow_of(values: np.ndarray) -> pa.Array:
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        import orjson

        return pa.array([v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values])


def _numpy_dtype(datatype: str) -> np.dtype:
    from ..core.codec import NUMPY_DTYPES

    return NUMPY_DTYPES[datatype]
