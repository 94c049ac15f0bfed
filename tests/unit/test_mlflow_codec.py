"""MLflow's /invocations format (core/codec/mlflow.py) and the `serve` command line
(kserve/sagemaker.py), in-process; the server and MLflow's own server side by side are in
tests/server/test_mlflow_protocol.py."""

import numpy as np
import pytest

from model_server.core.codec import PREDICT, PROBA, InferenceResponse, Output
from model_server.core.codec.mlflow import decode_mlflow, encode_mlflow, media_type
from model_server.core.errors import InvalidInput, UnsupportedMediaType
from model_server.http.settings import protocol_list
from model_server.kserve.sagemaker import arguments

JSON = "application/json"
TEXT, NUMBERS = frozenset({"colour"}), frozenset({"size", "count"})


def decode(body, content_type=JSON, **options):
    options.setdefault("text_columns", TEXT)
    options.setdefault("numeric_columns", NUMBERS)
    return decode_mlflow(body.encode() if isinstance(body, str) else body, content_type, **options)


def columns(request) -> dict:
    return {t.name: (t.datatype, t.data.tolist()) for t in request.inputs}


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "Application/JSON", "application/json; charset=utf-8", "text/csv; charset=UTF-8"],
)
def test_media_types_taken(content_type):
    assert media_type(content_type) in ("application/json", "text/csv")


@pytest.mark.parametrize(
    "content_type,message",
    [
        (None, "no Content-Type"),
        ("", "no Content-Type"),
        ("text/plain", "only supports the following content types"),
        ("application/vnd.apache.parquet", "only supports the following content types"),
        ("application/json; charset=latin-1", "only supports UTF-8"),
        ("application/json; format=pandas-split", "Unrecognized content type parameters: format"),
    ],
)
def test_media_types_refused(content_type, message):
    with pytest.raises(UnsupportedMediaType, match=message):
        media_type(content_type)


def test_every_form_decodes_to_the_same_named_columns():
    expected = {"colour": ("BYTES", ["red", "blue"]), "size": ("FP64", [0.5, -1.0]), "count": ("FP64", [3.0, 2.0])}
    bodies = [
        '{"dataframe_split": {"columns": ["colour", "size", "count"], "data": [["red", 0.5, 3], ["blue", -1, 2]]}}',
        '{"dataframe_split": {"index": [7, 8], "columns": ["colour", "size", "count"],'
        ' "data": [["red", 0.5, 3], ["blue", -1, 2]]}}',
        '{"dataframe_records": [{"colour": "red", "size": 0.5, "count": 3},'
        ' {"colour": "blue", "size": -1, "count": 2}]}',
        '{"instances": [{"colour": "red", "size": 0.5, "count": 3}, {"colour": "blue", "size": -1, "count": 2}]}',
        '{"inputs": {"colour": ["red", "blue"], "size": [0.5, -1], "count": [3, 2]}}',
    ]
    for body in bodies:
        assert columns(decode(body)) == expected, body
    assert columns(decode("colour,size,count\nred,0.5,3\nblue,-1,2\n", "text/csv")) == expected


def test_rows_without_names_are_one_matrix():
    request = decode('{"instances": [[1, 2], [3, 4]]}')
    (tensor,) = request.inputs
    assert (tensor.datatype, tensor.data.tolist()) == ("FP64", [[1.0, 2.0], [3.0, 4.0]])
    (mixed,) = decode('{"inputs": [["red", 1]]}').inputs
    assert mixed.datatype == "BYTES" and mixed.data.tolist() == [["red", 1]]


def test_columns_the_model_does_not_take_are_left_out_and_a_missing_one_is_null():
    body = '{"dataframe_records": [{"colour": "red", "size": 1, "label": 0}, {"colour": "red", "count": 2}]}'
    decoded = columns(decode(body))
    assert list(decoded) == ["colour", "size", "count"]
    assert np.isnan(decoded["size"][1][1]) and np.isnan(decoded["count"][1][0])
    # A model without feature names takes every column, in the order sent, as one matrix.
    (matrix,) = decode(
        '{"dataframe_split": {"columns": ["b", "a"], "data": [[1, 2]]}}',
        text_columns=frozenset(),
        numeric_columns=frozenset(),
    ).inputs
    assert (matrix.datatype, matrix.data.tolist()) == ("FP64", [[1.0, 2.0]])


@pytest.mark.parametrize(
    "body,message",
    [
        ("[1, 2]", "Received a list"),
        ('"x"', "Received unexpected input type 'str'"),
        ("{nope", "valid JSON"),
        ("{}", r"exactly one of the input fields .* Received dictionary with input fields: \[\]"),
        ('{"instances": [[1]], "inputs": [[1]]}', r"input fields: \['instances', 'inputs'\]"),
        ('{"dataframe_split": {"columns": ["size"]}}', '"dataframe_split" needs "data"'),
        ('{"dataframe_split": {"data": [[1]], "orient": "split"}}', r"unknown keys \['orient'\]"),
        (
            '{"dataframe_split": {"columns": ["size", "count"], "data": [[1, 2], [3]]}}',
            "row 1 has 1 values, expected 2",
        ),
        ('{"dataframe_records": {"size": 1}}', "must be a list of records"),
        ('{"dataframe_records": [1]}', "record 0 must be an object"),
        ('{"inputs": {"size": [1, 2], "count": [1]}}', r"differ in length: \[1, 2\]"),
        ('{"inputs": []}', "non-empty list"),
        ('{"dataframe_split": {"columns": ["size", "size"], "data": [[1, 2]]}}', "duplicate column names"),
        ('{"dataframe_records": [{"a": 1, "b": 2}]}', r"none of the columns \['a', 'b'\] is one the model takes"),
        ('{"dataframe_records": [{"size": "big"}]}', "row 0, column 'size': expected a number, got str 'big'"),
        ('{"inputs": [[1]], "params": [1]}', '"params" must be an object'),
        ('{"inputs": [[1]], "params": {"top_k": 1}}', r"params \['top_k'\] are not in the model's signature"),
    ],
)
def test_json_mistakes_name_the_problem(body, message):
    with pytest.raises(InvalidInput, match=message):
        decode(body)


@pytest.mark.parametrize(
    "body,message",
    [
        (b"", "empty"),
        (b"colour,size,count\n", "no rows"),
        (b"colour,size\nred,1,2\n", "CSV row 1 has 3 values"),
        (b"colour,size\n\xff,1\n", "valid UTF-8"),
        (b"colour,size\nred,big\n", "column 'size': expected a number, got str 'big'"),
    ],
)
def test_csv_mistakes_name_the_problem(body, message):
    with pytest.raises(InvalidInput, match=message):
        decode(body, "text/csv")


def test_csv_reads_empty_as_null_and_keeps_text_columns_as_text():
    decoded = columns(decode("colour,size\n12,\n", "text/csv"))
    assert decoded["colour"] == ("BYTES", ["12"])
    assert decoded["size"][0] == "FP64" and np.isnan(decoded["size"][1][0])


def test_declared_params_and_the_predict_fn():
    request = decode('{"inputs": [[1]], "params": {"temperature": 2}}', declared_params=("temperature",))
    assert request.outputs == [PREDICT]
    assert decode('{"inputs": [[1]]}', predict_fn="predict_proba").outputs == [PROBA]
    with pytest.raises(NotImplementedError, match="predict_log_proba, which this server does not serve"):
        decode('{"inputs": [[1]]}', predict_fn="predict_log_proba")


@pytest.mark.parametrize(
    "data,expected",
    [
        (np.array([0, 2, 1]), b'{"predictions":[0,2,1]}'),
        (np.array([[0.5, 1.25], [2.0, -1.0]]), b'{"predictions":[[0.5,1.25],[2.0,-1.0]]}'),
        (np.array(["setosa", b"virginica"], dtype=object), b'{"predictions":["setosa","virginica"]}'),
    ],
)
def test_predictions_a_value_or_a_list_per_row(data, expected):
    response = InferenceResponse("m", "1", [Output(PREDICT, "FP64", data)])
    body, headers = encode_mlflow(None, response)
    assert (body, headers) == (expected, {"content-type": JSON})


def test_protocol_list():
    assert protocol_list(" v1, MLflow ,v1") == ("v1", "mlflow")
    assert str(protocol_list("v2,mlflow")) == "v2,mlflow"
    for bad in ("", "v3", "v1,grpc"):
        with pytest.raises(ValueError, match="comma-separated list of v1, v2, mlflow"):
            protocol_list(bad)


def test_serve_arguments():
    assert arguments(["--model_dir=/m"], {}) == ["--model_dir=/m"]  # KServe's way: unchanged
    assert arguments(["serve"], {}) == ["--model_dir=/opt/ml/model", "--enable_grpc=false"]
    assert arguments(["serve"], {"SAGEMAKER_BIND_TO_PORT": "9000"}) == [
        "--model_dir=/opt/ml/model",
        "--http_port=9000",
        "--enable_grpc=false",
    ]
    given = ["serve", "--model_dir", "/m", "--http_port=1", "--enable_grpc"]
    assert arguments(given, {"SAGEMAKER_BIND_TO_PORT": "9000"}) == given[1:]
    assert arguments(["serve"], {"MODEL_SERVER_MODEL_DIR": "/m", "MODEL_SERVER_HTTP_PORT": "1"}) == [
        "--enable_grpc=false"
    ]
    assert arguments(["serve", "--model_repository=/r"], {}) == ["--enable_grpc=false", "--model_repository=/r"]
