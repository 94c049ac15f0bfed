"""MLflow's scoring protocol (``mlflow models serve``, SageMaker's ``POST /invocations``).

In: ``application/json`` holding exactly one of

    {"dataframe_split": {"columns": [...], "data": [[...], ...], "index": [...]}}   # df.to_dict(orient="split")
    {"dataframe_records": [{"col": value, ...}, ...]}                              # orient="records"
    {"instances": [[...], ...] | [{"col": value}, ...] | {"col": [...]}}           # TF serving's forms
    {"inputs": the same forms}

plus an optional ``"params": {...}``; or ``text/csv`` whose header row names the columns. The only
content-type parameter taken is ``charset=utf-8``, as in MLflow's server
(``mlflow/pyfunc/scoring_server/__init__.py``).

Decoded into a ``V2Request``: one [N] tensor per named column, or one [N, F] tensor when the
columns have no names (or the model has none), so that ``core/schema.py`` decides column order,
types and every error exactly as it does for V2 per-feature tensors (a signature's columns are the
model's features: ``artifact/mlflow_model.py``). Columns a model with named features does not
take are left out, as MLflow's schema enforcement leaves them (a client may send its whole frame,
label column included); a column it needs and lacks is a 400 naming it. No pandas: MLflow's
server builds a DataFrame per request, the larger part of its cost.

Out: ``{"predictions": [...]}``, one entry per row (a list per row where the model answers several
values per row), as MLflow answers a scikit-learn model's ndarray; with ``predict_fn:
predict_proba`` in the MLmodel file, the probabilities, as MLflow's own server would answer.

``params`` are refused with a 400 naming them unless the signature declares them; declared ones
are accepted and unused, as MLflow's scikit-learn flavor does (its predict takes none). MLflow
itself logs a warning and ignores undeclared ones: here a client learns at once that they had no
effect.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import orjson

from ..errors import InvalidInput, UnsupportedMediaType
from .tensors import loads_json
from .types import JSON_CONTENT, PREDICT, PROBA, InferenceResponse, Tensor, V2Request

JSON, CSV = "application/json", "text/csv"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
REQUIRED_INPUT_FORMAT = "The input must be a JSON dictionary with exactly one of the input fields " + ", ".join(
    repr(f) for f in FORMATS
)
# The pyfunc predict_fn values this server answers, and the output each is.
PREDICT_FNS = {"predict": PREDICT, "predict_proba": PROBA}


@dataclass
class Columns:
    """What a payload carries: columns of values, named or not (then positional)."""

    names: list[str] | None
    values: list[list]


def media_type(content_type: str | None) -> str:
    """The media type (``application/json`` or ``text/csv``), after MLflow's checks of its
    parameters: ``charset`` must be utf-8, no other parameter is taken (415 otherwise)."""
    if not content_type:
        raise UnsupportedMediaType(f"no Content-Type: send {JSON} or {CSV}")
    mime, *pairs = (part.strip() for part in content_type.split(";"))
    parameters = {key.strip().lower(): value.strip().strip('"') for key, _, value in (p.partition("=") for p in pairs)}
    if parameters.get("charset", "utf-8").lower() != "utf-8":
        raise UnsupportedMediaType("The scoring server only supports UTF-8")
    unexpected = sorted(set(parameters) - {"charset"})
    if unexpected:
        raise UnsupportedMediaType(f"Unrecognized content type parameters: {', '.join(unexpected)}")
    mime = mime.lower()
    if mime not in (JSON, CSV):
        raise UnsupportedMediaType(
            f"This predictor only supports the following content types: {JSON}, {CSV}. Got '{content_type}'."
        )
    return mime


def decode_mlflow(
    body: bytes,
    content_type: str | None,
    text_columns: frozenset[str] = frozenset(),
    numeric_columns: frozenset[str] = frozenset(),
    declared_params: tuple[str, ...] = (),
    predict_fn: str = "predict",
) -> V2Request:
    """An /invocations body as a V2 request for the output ``predict_fn`` names.

    ``text_columns``: the model's string features, kept as strings when CSV is read (every
    other CSV column is read as numbers); ``numeric_columns``: its numeric features, whose first
    value that is not a number is named; ``declared_params``: the params its signature declares."""
    mime = media_type(content_type)
    output = PREDICT_FNS.get(predict_fn)
    if output is None:
        raise NotImplementedError(
            f"this MLflow model answers /invocations with {predict_fn}, which this server does not "
            f"serve (it serves {', '.join(PREDICT_FNS)}); its V1 and V2 routes answer predict"
        )
    columns = _csv_columns(body, text_columns) if mime == CSV else _json_columns(body, declared_params)
    return V2Request(None, _tensors(columns, text_columns | numeric_columns, numeric_columns), [output])


def encode_mlflow(request: V2Request, response: InferenceResponse) -> tuple[bytes, dict[str, str]]:
    """``{"predictions": [...]}``: the one output asked for, a value (or a list) per row."""
    data = response.outputs[0].data
    if data.dtype.kind in "biuf":
        return orjson.dumps({"predictions": data}, option=orjson.OPT_SERIALIZE_NUMPY), JSON_CONTENT
    values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data.tolist()]
    return orjson.dumps({"predictions": values}), JSON_CONTENT


def error_document(code: str, message: str) -> bytes:
    """MLflow's error body (``MlflowException.serialize_as_json``)."""
    return orjson.dumps({"error_code": code, "message": message})


# -- JSON ----------------------------------------------------------------------------------------


def _json_columns(body: bytes, declared_params: tuple[str, ...]) -> Columns:
    try:
        doc = loads_json(body)
    except InvalidInput as exc:
        raise InvalidInput(f"Ensure that input is a valid JSON formatted string. Error: {exc}") from None
    if isinstance(doc, list):
        raise InvalidInput(f"{REQUIRED_INPUT_FORMAT}. Received a list.")
    if not isinstance(doc, dict):
        raise InvalidInput(f"{REQUIRED_INPUT_FORMAT}. Received unexpected input type '{type(doc).__name__}'.")
    formats = [key for key in doc if key in FORMATS]
    if len(formats) != 1:
        raise InvalidInput(f"{REQUIRED_INPUT_FORMAT}. Received dictionary with input fields: {list(doc)}.")
    _check_params(doc.get("params"), declared_params)
    form, data = formats[0], doc[formats[0]]
    if form == "dataframe_split":
        return _split(data)
    if form == "dataframe_records":
        if not isinstance(data, list):
            raise InvalidInput('"dataframe_records" must be a list of records, like df.to_dict(orient="records")')
        return _records(data, form)
    return _tf_serving(data, form)


def _check_params(params: object, declared: tuple[str, ...]) -> None:
    if params is None:
        return
    if not isinstance(params, dict):
        raise InvalidInput(f'"params" must be an object of param names and values, got {type(params).__name__}')
    unknown = [name for name in params if name not in declared]
    if unknown:
        says = f"declares {list(declared)}" if declared else "declares no params"
        raise InvalidInput(f"params {unknown} are not in the model's signature (it {says}); nothing would use them")


def _split(data: object) -> Columns:
    if not isinstance(data, dict):
        raise InvalidInput('"dataframe_split" must be an object like df.to_dict(orient="split"): columns, data')
    unknown = sorted(set(data) - {"columns", "data", "index"})
    if unknown:
        raise InvalidInput(f'"dataframe_split" has unknown keys {unknown}; it takes columns, data and index')
    rows, names = data.get("data"), data.get("columns")
    if not isinstance(rows, list) or not rows:
        raise InvalidInput('"dataframe_split" needs "data": a non-empty list of rows')
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise InvalidInput('"dataframe_split" "columns" must be a list of column names')
    rows = [row if isinstance(row, list) else [row] for row in rows]  # one column: a value per row
    values = _transpose(rows, len(names) if names is not None else None)
    return Columns(names, values)


def _records(records: list, form: str) -> Columns:
    if not records:
        raise InvalidInput(f'"{form}" must hold at least one record')
    names: dict[str, None] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f'"{form}" record {i} must be an object of column names and values')
        names.update(dict.fromkeys(record))
    # A column a record lacks is null there, as pandas reads it (and the schema says whether null is taken).
    return Columns(list(names), [[record.get(name) for record in records] for name in names])


def _tf_serving(data: object, form: str) -> Columns:
    """``instances`` / ``inputs``: rows, records, or an object of columns."""
    if isinstance(data, dict):
        if not data:
            raise InvalidInput(f'"{form}" must hold at least one column')
        values = [column if isinstance(column, list) else [column] for column in data.values()]
        lengths = {len(column) for column in values}
        if len(lengths) != 1:
            raise InvalidInput(f'the columns of "{form}" differ in length: {sorted(lengths)}')
        return Columns(list(data), values)
    if not isinstance(data, list) or not data:
        raise InvalidInput(f'"{form}" must be a non-empty list of rows, of records, or an object of columns')
    if isinstance(data[0], dict):
        return _records(data, form)
    if not isinstance(data[0], list):
        return Columns(None, [data])  # a list of values: one column
    return Columns(None, _transpose(data, None))


def _transpose(rows: list, width: int | None) -> list[list]:
    width = len(rows[0]) if width is None else width
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidInput(f"row {i} must be a list of values, like row 0")
        if len(row) != width:
            raise InvalidInput(f"row {i} has {len(row)} values, expected {width}")
    return [list(column) for column in zip(*rows, strict=True)] if width else []


# -- CSV -----------------------------------------------------------------------------------------


def _csv_columns(body: bytes, text_columns: frozenset[str]) -> Columns:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"Ensure that input is a valid UTF-8 encoded string. Error: {exc}") from None
    try:
        header, *rows = (row for row in csv.reader(io.StringIO(text)) if row)
    except ValueError:
        raise InvalidInput("the CSV body is empty: send a header row of column names, then rows") from None
    except csv.Error as exc:
        raise InvalidInput(f"not valid CSV: {exc}") from None
    if not rows:
        raise InvalidInput("the CSV body has a header row and no rows")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise InvalidInput(f"CSV row {i + 1} has {len(row)} values, the header names {len(header)} columns")
    columns = [list(column) for column in zip(*rows, strict=True)]
    return Columns(header, [c if n in text_columns else _numbers(c) for n, c in zip(header, columns, strict=True)])


def _numbers(column: list[str]) -> list:
    """A CSV column as numbers (empty: null, as pandas reads it); left as strings when a value is
    not a number, for the schema to name the column."""
    try:
        return [float(value) if value != "" else None for value in column]
    except ValueError:
        return column


# -- to tensors ----------------------------------------------------------------------------------


def _tensors(columns: Columns, known_columns: frozenset[str], numeric_columns: frozenset[str]) -> list[Tensor]:
    if not columns.values or not columns.values[0]:
        raise InvalidInput("the input has no rows")
    if columns.names is None or not known_columns:  # no names sent, or a model without feature names
        return [_matrix(columns.values)]
    if len(set(columns.names)) != len(columns.names):
        raise InvalidInput(f"duplicate column names in {columns.names}")
    # Columns the model does not take are left out, as MLflow's schema enforcement leaves them.
    named = [
        (name, values) for name, values in zip(columns.names, columns.values, strict=True) if name in known_columns
    ]
    if not named:
        raise InvalidInput(f"none of the columns {columns.names} is one the model takes: {sorted(known_columns)}")
    return [_column(name, values, name in numeric_columns) for name, values in named]


def _column(name: str, values: list, numeric: bool) -> Tensor:
    if _numeric(values):
        return Tensor(name, "FP64", np.array(values, dtype=np.float64))
    if numeric:
        row, value = next((i, v) for i, v in enumerate(values) if not _numeric([v]))
        got = f"{type(value).__name__} {value!r}"[:200]
        raise InvalidInput(f"row {row}, column '{name}': expected a number, got {got}")
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return Tensor(name, "BYTES", column)


def _matrix(columns: list[list]) -> Tensor:
    """Unnamed columns: one [N, F] tensor, positional (as V2's matrix tensor is)."""
    if all(_numeric(values) for values in columns):
        return Tensor("input-0", "FP64", np.array(columns, dtype=np.float64).T)
    matrix = np.empty((len(columns[0]), len(columns)), dtype=object)
    for j, values in enumerate(columns):
        matrix[:, j] = values
    return Tensor("input-0", "BYTES", matrix)


def _numeric(values: list) -> bool:
    """Numbers (or nulls, or booleans: 0/1 as in the schema) only: a float64 column. Anything else
    stays as it came, for the schema to check value by value (and say which one is wrong)."""
    return all(value is None or isinstance(value, (int, float)) for value in values)
