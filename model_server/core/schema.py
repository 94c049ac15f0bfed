"""The model's input schema: turns decoded request data into the estimator's ``X``.

Every client mistake is caught here and raised as ``InvalidInput`` with a message that names the
instance, feature or tensor at fault (HTTP 400 / gRPC INVALID_ARGUMENT). Stock KServe passes
whatever it gets to ``predict`` and turns the resulting exception into a 500.

Because this check is complete (shape, types, NaN/inf), the estimator is then called with
scikit-learn's own duplicate validation switched off (see ``predictor.py``).
"""

from __future__ import annotations

import numpy as np

from . import estimator_inputs
from .codec import Tensor
from .errors import ArtifactError, InvalidInput
from .metadata import Feature

CONVERT_CHUNK_ROWS = 8192
# Said when a type was derived from the estimator, not declared, and the request disagrees.
DECLARE_HINT = '; if it takes strings, declare it with datatype BYTES in metadata.json "features"'


class ColumnBatch(dict):
    """Columns by feature name, for a model that takes them one by one (an ONNX graph with an
    input per feature): no pandas needed. ``len()`` is its row count, as for a matrix or a frame."""

    def __len__(self) -> int:
        return len(next(iter(self.values()))) if dict.__len__(self) else 0


class InputSchema:
    """Feature names, datatypes and count, from metadata.json or the fitted estimator.

    ``documents``: the model takes a 1-D sequence of strings (one BYTES feature), not rows
    (``estimator_inputs.takes_documents``). ``categories``: the values a fitted encoder knows for a
    feature, for the probe row predicted at load."""

    def __init__(
        self,
        features: list[Feature] | None,
        n_features: int | None,
        allow_nan: bool,
        documents: bool = False,
        declared: bool = False,
        categories: dict[str, list] | None = None,
    ):
        self.features = features
        self.n_features = len(features) if features else n_features
        self.names = [f.name for f in features] if features else None
        self.allow_nan = allow_nan
        self.documents = documents
        self.numeric = not features or all(f.numeric for f in features)
        self.categories = categories or {}
        self._hint = "" if declared else DECLARE_HINT
        self.columns = False  # mixed types as a ColumnBatch (a model that takes columns apart), not a DataFrame
        self._index = {name: i for i, name in enumerate(self.names or [])}

    @classmethod
    def for_estimator(
        cls, estimator, declared: tuple[Feature, ...] | None = None, documents: bool | None = None
    ) -> InputSchema:
        """``declared``: metadata.json's features; ``documents``: its "documents" (None: derive)."""
        if documents is None:
            documents = estimator_inputs.takes_documents(estimator)
        if documents:
            if declared and (len(declared) != 1 or declared[0].numeric):
                raise ArtifactError("a model that takes documents has one feature, of datatype BYTES")
            features = list(declared or [Feature("text", "BYTES")])
            return cls(features, 1, allow_nan=False, documents=True, declared=bool(declared))
        n_features = getattr(estimator, "n_features_in_", None)
        known = estimator_inputs.column_values(estimator)
        categories = {name: values for name, (_, values) in known.items() if values}
        if declared:
            features = list(declared)
            if n_features is not None and len(features) != n_features:
                raise ArtifactError(
                    f"metadata declares {len(features)} features, the estimator was fitted on {n_features}"
                )
        elif hasattr(estimator, "feature_names_in_"):
            features = [
                Feature(str(name), "BYTES" if known.get(str(name), (False,))[0] else "FP64")
                for name in estimator.feature_names_in_
            ]
        else:
            features = None
        schema = cls(features, n_features, _allows_nan(estimator), declared=bool(declared), categories=categories)
        schema.columns = bool(getattr(estimator, "takes_columns", False))
        return schema

    def probe(self):
        """One valid ``X`` row (a category the model knows where it knows one, else 0 or a word),
        or None when the width is unknown: predicted once at load to learn the outputs' types and
        shapes."""
        if self.n_features is None:
            return None
        if self.documents:
            return self._assemble([["probe"]], 1)
        features = self.features or [Feature(f"#{j}") for j in range(self.n_features)]
        values = [(self.categories.get(f.name) or [0.0 if f.numeric else "probe"])[0] for f in features]
        return self._assemble([[v] for v in values], 1)

    # -- V1: rows ---------------------------------------------------------------------------

    def from_rows(self, instances) -> np.ndarray | pd.DataFrame:  # noqa: F821
        """V1 ``instances``: a list of rows, each a list of values or an object keyed by name."""
        if isinstance(instances, np.ndarray):  # rows of numbers, decoded in the helper (body_decoder.py)
            if self.numeric and instances.shape[0] and self.n_features in (None, instances.shape[1]):
                return self._checked(instances.astype(np.float64, copy=False))
            instances = instances.tolist()  # let the checking path name what is wrong
        if not isinstance(instances, list) or not instances:
            raise InvalidInput('"instances" must be a non-empty list of rows')
        if self.documents and isinstance(instances[0], (str, bytes)):
            # A model of documents takes plain strings too (as stock KServe's sklearnserver does).
            instances = [[doc] if isinstance(doc, (str, bytes)) else doc for doc in instances]
        if isinstance(instances[0], dict):
            instances = self._records_to_rows(instances)
        if self.numeric:
            matrix = _fast_numeric_matrix(instances, self.n_features)
            if matrix is not None:
                return self._checked(matrix)
        columns = self._columns_from_rows(instances)
        return self._assemble(columns, len(instances))

    def _records_to_rows(self, records: list) -> list:
        if self.names is None:
            raise InvalidInput(
                "instances are objects keyed by feature name, but this model has no feature names; "
                "send each instance as a list of values"
            )
        expected = self._index.keys()
        rows = []
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                raise InvalidInput(f"instance {i}: expected an object keyed by feature name like instance 0")
            if record.keys() != expected:
                missing = [n for n in self.names if n not in record]
                unknown = [n for n in record if n not in self._index]
                problems = []
                if missing:
                    problems.append(f"missing features {missing}")
                if unknown:
                    problems.append(f"unknown features {unknown}")
                raise InvalidInput(f"instance {i}: {'; '.join(problems)}; expected {self.names}")
            rows.append([record[name] for name in self.names])
        return rows

    def _columns_from_rows(self, rows: list) -> list[list]:
        """The slow path: check each value, naming the first one that is wrong."""
        width = self.n_features if self.n_features is not None else _row_width(rows[0], 0)
        for i, row in enumerate(rows):
            if _row_width(row, i) != width:
                raise InvalidInput(
                    f"instance {i} has {len(row)} features, the model expects {width}"
                    + (f" ({self.names})" if self.names else "")
                )
        return [[row[j] for row in rows] for j in range(width)]

    # -- V2: tensors ------------------------------------------------------------------------

    def from_tensors(self, tensors: list[Tensor]) -> np.ndarray | pd.DataFrame:  # noqa: F821
        """V2 inputs: one [N, F] tensor (any name), or one [N] tensor per named feature."""
        if not tensors:
            raise InvalidInput('"inputs" must be a non-empty list of tensors')
        if len(tensors) == 1 and self.n_features == 1 and tensors[0].data.ndim == 1:
            return self._assemble([tensors[0].data], len(tensors[0].data))  # a one-feature model's [N] column
        if len(tensors) == 1 and not (self.names and tensors[0].name in self._index and self.n_features == 1):
            return self._from_matrix_tensor(tensors[0])
        return self._from_feature_tensors(tensors)

    def _from_matrix_tensor(self, tensor: Tensor):
        data = tensor.data
        if data.ndim != 2:
            raise InvalidInput(
                f"input '{tensor.name}' has shape {list(data.shape)}; send one [N, {self.n_features or 'F'}] "
                "tensor (N rows of features) or one [N] tensor per feature"
            )
        if self.n_features is not None and data.shape[1] != self.n_features:
            raise InvalidInput(
                f"input '{tensor.name}' has {data.shape[1]} features per row, the model expects {self.n_features}"
                + (f" ({self.names})" if self.names else "")
            )
        if tensor.datatype == "BYTES":
            if self.numeric:
                raise InvalidInput(f"input '{tensor.name}' is BYTES, but this model takes numbers")
            return self._assemble([list(col) for col in data.T], data.shape[0])
        if not self.numeric:
            text = [f.name for f in self.features if not f.numeric]
            raise InvalidInput(
                f"input '{tensor.name}' is {tensor.datatype}, but features {text} are strings: "
                "send one tensor per feature"
            )
        return self._checked(data.astype(np.float64, copy=False))

    def _from_feature_tensors(self, tensors: list[Tensor]):
        if self.names is None:
            raise InvalidInput(
                f"got {len(tensors)} input tensors, but this model has no feature names: "
                f"send one [N, {self.n_features or 'F'}] tensor"
            )
        by_name = {t.name: t for t in tensors}
        unknown = [t.name for t in tensors if t.name not in self._index]
        missing = [n for n in self.names if n not in by_name]
        if unknown or missing or len(by_name) != len(tensors):
            raise InvalidInput(
                f"inputs must be one tensor per feature {self.names}"
                + (f"; unknown {unknown}" if unknown else "")
                + (f"; missing {missing}" if missing else "")
                + ("; duplicate names" if len(by_name) != len(tensors) else "")
            )
        n_rows = None
        columns = []
        for feature in self.features:
            tensor = by_name[feature.name]
            data = tensor.data
            if data.ndim == 2 and data.shape[1] == 1:
                data = data[:, 0]
            if data.ndim != 1:
                raise InvalidInput(
                    f"input '{feature.name}' has shape {list(tensor.data.shape)}; expected [N] or [N, 1]"
                )
            if n_rows is None:
                n_rows = data.shape[0]
            elif data.shape[0] != n_rows:
                raise InvalidInput(f"input '{feature.name}' has {data.shape[0]} rows, '{self.names[0]}' has {n_rows}")
            if feature.numeric and tensor.datatype == "BYTES":
                raise InvalidInput(
                    f"input '{feature.name}' is BYTES, but the feature is numeric ({feature.datatype}){self._hint}"
                )
            columns.append(data)
        if n_rows == 0:
            raise InvalidInput("inputs have zero rows")
        return self._assemble(columns, n_rows)

    # -- shared ------------------------------------------------------------------------------

    def _assemble(self, columns: list, n_rows: int):
        """Check every column against its feature; an all-numeric model gets a float64 matrix, a
        model of documents the 1-D array of strings, any other a DataFrame."""
        checked = [self._column(j, col) for j, col in enumerate(columns)]
        if self.documents:
            return checked[0]
        if self.numeric:
            return self._checked(np.column_stack(checked) if checked else np.empty((n_rows, 0)))
        if self.columns:
            return ColumnBatch(zip(self.names, checked, strict=True))
        import pandas as pd  # only mixed-type pipelines need a DataFrame

        return pd.DataFrame({f.name: col for f, col in zip(self.features, checked, strict=True)})

    def _column(self, j: int, values) -> np.ndarray:
        feature = self.features[j] if self.features else Feature(f"#{j}")
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
            if not feature.numeric:
                raise InvalidInput(f"feature '{feature.name}' takes strings, got numbers")
            return values.astype(np.float64, copy=False)
        out = np.empty(len(values), dtype=np.float64 if feature.numeric else object)
        for i, value in enumerate(values):
            out[i] = _checked_value(value, feature, i, self.allow_nan, self._hint)
        return out

    def _checked(self, matrix: np.ndarray) -> np.ndarray:
        finite = np.isfinite(matrix)
        if not finite.all():
            bad = ~finite if not self.allow_nan else np.isinf(matrix)
            if bad.any():
                row, col = map(int, np.argwhere(bad)[0])
                name = self.names[col] if self.names else f"#{col}"
                what = "null/NaN or infinity" if not self.allow_nan else "infinity"
                raise InvalidInput(f"instance {row}, feature '{name}': {what} is not accepted by this model")
        return matrix

    # -- batch scoring: one value at a time --------------------------------------------------

    def value_problem(self, column: int, value, row: int) -> str | None:
        """What from_rows / from_tensors say about ``value`` as feature ``column`` of instance
        ``row``, or None when they take it: batch scoring names each row it refuses with it."""
        feature = self.features[column] if self.features else Feature(f"#{column}")
        if feature.numeric and isinstance(value, (float, np.floating)):
            if np.isinf(value) or (np.isnan(value) and not self.allow_nan):
                what = "null/NaN or infinity" if not self.allow_nan else "infinity"  # as _checked says it
                return f"instance {row}, feature '{feature.name}': {what} is not accepted by this model"
            return None
        try:
            _checked_value(value, feature, row, self.allow_nan, self._hint)
        except InvalidInput as exc:
            return str(exc)
        return None


def _fast_numeric_matrix(rows: list, n_features: int | None) -> np.ndarray | None:
    """One C-level conversion per chunk of rows for the common case; None sends the caller to the
    checking path. (All-boolean rows come out as kind "b" and take the checking path, which also
    allows them.) Large requests are converted in chunks so that the conversion, done in a worker
    thread, lets the event loop take the GIL in between."""
    parts = []
    for start in range(0, len(rows), CONVERT_CHUNK_ROWS):
        try:
            part = np.array(rows[start : start + CONVERT_CHUNK_ROWS])
        except (ValueError, TypeError):
            return None
        if part.ndim != 2 or part.dtype.kind not in "iuf" or n_features not in (None, part.shape[1]):
            return None
        parts.append(part.astype(np.float64, copy=False))
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _row_width(row, i: int) -> int:
    if isinstance(row, dict):
        raise InvalidInput(f"instance {i} is an object, instance 0 a list: use one form for all instances")
    if not isinstance(row, list):
        raise InvalidInput(
            f"instance {i} must be a list of feature values (or an object keyed by feature name), got {_json_type(row)}"
        )
    return len(row)


def _checked_value(value, feature: Feature, row: int, allow_nan: bool, hint: str = ""):
    where = f"instance {row}, feature '{feature.name}'"
    if isinstance(value, (list, dict)):
        raise InvalidInput(f"{where}: nested too deep, expected a single value, got {_json_type(value)}")
    if value is None or (isinstance(value, float) and value != value):
        if allow_nan and feature.numeric:
            return np.nan
        raise InvalidInput(f"{where}: null/NaN is not accepted by this model")
    if feature.numeric:
        # Booleans count as 0/1, as in a V2 BOOL tensor and in numpy's own conversion.
        if not isinstance(value, (int, float, np.number)):
            got = f"{_json_type(value)} {value!r}"[:200]
            raise InvalidInput(
                f"{where}: expected a number, got {got}" + (hint if isinstance(value, (str, bytes)) else "")
            )
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: bytes are not valid UTF-8") from None
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: expected a string, got {_json_type(value)} {value!r}"[:300])
    return value


def _json_type(value) -> str:
    return {list: "a list", dict: "an object", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _allows_nan(estimator) -> bool:
    if hasattr(estimator, "allow_nan"):  # an ONNX model says so itself: no scikit-learn import
        return bool(estimator.allow_nan)
    try:
        from sklearn.utils import get_tags

        return bool(get_tags(estimator).input_tags.allow_nan)
    except Exception:  # an estimator that predates tags or is not a scikit-learn estimator
        return False
