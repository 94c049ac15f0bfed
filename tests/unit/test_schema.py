"""InputSchema: what reaches the estimator, and the message for each client mistake."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from model_server.core.codec import Tensor
from model_server.core.errors import ArtifactError, InvalidInput
from model_server.core.metadata import Feature
from model_server.core.schema import InputSchema

NAMES = ["a", "b", "c"]


@pytest.fixture
def named():
    return InputSchema([Feature(n) for n in NAMES], None, allow_nan=False)


def test_rows_and_records_give_the_same_matrix(named):
    rows = named.from_rows([[1, 2, 3], [4, 5, 6]])
    records = named.from_rows([{"c": 3, "a": 1, "b": 2}, {"b": 5, "c": 6, "a": 4}])
    assert rows.dtype == np.float64 and rows.tolist() == records.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_matrix_and_feature_tensors_give_the_same_matrix(named):
    matrix = named.from_tensors([Tensor("any", "FP32", np.arange(6, dtype=np.float32).reshape(2, 3))])
    columns = named.from_tensors(
        [Tensor(n, "INT64", np.array([j, j + 3])) for j, n in reversed(list(enumerate(NAMES)))]
    )
    assert matrix.tolist() == columns.tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize(
    "rows,message",
    [
        ([[1, 2]], "instance 0 has 2 features, the model expects 3"),
        ([[1, 2, 3], [1, 2]], "instance 1 has 2 features"),
        ([[1, "x", 3]], "instance 0, feature 'b': expected a number, got a string"),
        ([[1, None, 3]], "feature 'b': null/NaN is not accepted"),
        ([[1, [2], 3]], "nested too deep"),
        ([[1, {"x": 1}, 3]], "nested too deep"),
        ([{"a": 1, "b": 2}], "missing features ['c']"),
        ([{"a": 1, "b": 2, "c": 3, "d": 4}], "unknown features ['d']"),
        ([{"a": 1, "b": 2, "c": 3}, [1, 2, 3]], "instance 1: expected an object"),
        ([1, 2, 3], "instance 0 must be a list"),
        ([], "non-empty list"),
        ("rows", "non-empty list"),
    ],
)
def test_row_mistakes(named, rows, message):
    with pytest.raises(InvalidInput) as error:
        named.from_rows(rows)
    assert message in str(error.value)


def test_infinity_is_rejected_even_where_nan_is_allowed():
    schema = InputSchema(None, 2, allow_nan=True)
    assert np.isnan(schema.from_rows([[None, 1]])[0, 0])
    with pytest.raises(InvalidInput, match="infinity"):
        schema.from_tensors([Tensor("x", "FP64", np.array([[np.inf, 1.0]]))])
    strict = InputSchema(None, 2, allow_nan=False)
    with pytest.raises(InvalidInput, match="instance 1, feature '#0': null/NaN"):
        strict.from_tensors([Tensor("x", "FP64", np.array([[1.0, 1.0], [np.nan, 1.0]]))])


def test_mixed_types_build_a_dataframe():
    schema = InputSchema([Feature("colour", "BYTES"), Feature("size")], None, allow_nan=False)
    frame = schema.from_rows([["red", 1], ["blue", 2.5]])
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["colour", "size"]
    assert frame["colour"].tolist() == ["red", "blue"] and frame["size"].dtype == np.float64
    from_bytes = schema.from_tensors(
        [
            Tensor("colour", "BYTES", np.array([b"red"], dtype=object)),
            Tensor("size", "FP32", np.array([[3.0]])),
        ]
    )
    assert from_bytes.iloc[0].tolist() == ["red", 3.0]
    with pytest.raises(InvalidInput, match="feature 'colour': expected a string"):
        schema.from_rows([[1, 1]])
    with pytest.raises(InvalidInput, match="not valid UTF-8"):
        schema.from_tensors(
            [Tensor("colour", "BYTES", np.array([b"\xff"], dtype=object)), Tensor("size", "FP64", np.array([1.0]))]
        )


def test_schema_from_estimator_and_metadata():
    X = pd.DataFrame({"x": [0.0, 1, 2, 3], "y": [1.0, 0, 1, 0]})
    fitted = LogisticRegression().fit(X, [0, 1, 0, 1])
    schema = InputSchema.for_estimator(fitted)
    assert schema.names == ["x", "y"] and schema.numeric and not schema.allow_nan
    declared = InputSchema.for_estimator(fitted, (Feature("p", "FP32"), Feature("q")))
    assert declared.names == ["p", "q"] and [f.datatype for f in declared.features] == ["FP32", "FP64"]
    with pytest.raises(ArtifactError, match="declares 1 features, the estimator was fitted on 2"):
        InputSchema.for_estimator(fitted, (Feature("p"),))
    hgb = HistGradientBoostingClassifier(max_iter=2).fit(np.random.default_rng(0).normal(size=(20, 2)), [0, 1] * 10)
    unnamed = InputSchema.for_estimator(hgb)
    assert unnamed.names is None and unnamed.n_features == 2 and unnamed.allow_nan
