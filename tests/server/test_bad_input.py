"""Client mistakes get 4xx with {"error": ...} naming the problem, never a 500, and the server
keeps answering correctly afterwards. Raw httpx requests so that any byte sequence can be sent."""

import httpx
import pytest

ROW = [5.1, 3.5, 1.4, 0.2]
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def tensor(data, shape=(1, 4), datatype="FP64", name="x"):
    return {"inputs": [{"name": name, "datatype": datatype, "shape": list(shape), "data": data}]}


V1_CASES = {
    "too few features": ({"instances": [[5.1, 3.5, 1.4]]}, "has 3 features, the model expects 4"),
    "too many features": ({"instances": [[*ROW, 1.0]]}, "has 5 features, the model expects 4"),
    "unknown feature name": (
        {"instances": [{**dict(zip(NAMES, ROW, strict=True)), "colour": 1}]},
        "unknown features ['colour']",
    ),
    "missing feature name": (
        {"instances": [dict(zip(NAMES[:3], ROW[:3], strict=True))]},
        "missing features ['petal_width']",
    ),
    "string where a number is needed": ({"instances": [[5.1, "wide", 1.4, 0.2]]}, "expected a number, got a string"),
    "numeric string": ({"instances": [[5.1, "3.5", 1.4, 0.2]]}, "expected a number, got a string"),
    "empty instances": ({"instances": []}, '"instances" must be a non-empty list'),
    "missing instances": ({"rows": [ROW]}, 'missing "instances"'),
    "instances not a list": ({"instances": {"a": 1}}, '"instances" must be a non-empty list'),
    "V2 body on V1": (tensor(ROW), 'missing "instances" (this is the V1 endpoint'),
    "ragged rows": ({"instances": [ROW, ROW[:3]]}, "instance 1 has 3 features"),
    "nested too deep": ({"instances": [[[5.1], 3.5, 1.4, 0.2]]}, "nested too deep"),
    "flat row instead of rows": ({"instances": ROW}, "instance 0 must be a list of feature values"),
    "null value": ({"instances": [[5.1, None, 1.4, 0.2]]}, "null/NaN is not accepted"),
    "body is a list": ([ROW], "expected a JSON object"),
    "parameters not an object": ({"instances": [ROW], "parameters": [1]}, '"parameters" must be an object'),
}

V2_CASES = {
    "too few features": (tensor([1.0, 2, 3], shape=(1, 3)), "has 3 features per row, the model expects 4"),
    "too many features": (tensor([1.0] * 5, shape=(1, 5)), "has 5 features per row"),
    "string data in FP64": (tensor(["a", "b", "c", "d"]), "is FP64, but its data holds strings"),
    "null in data": (
        tensor([1.0, None, 1.0, 1.0]),
        "feature 'sepal_width': null/NaN or infinity is not accepted by this model",
    ),
    "fraction in INT32": (tensor([1.5, 1, 1, 1], datatype="INT32"), "is INT32, but its data holds fractional numbers"),
    "INT8 out of range": (tensor([300, 1, 1, 1], datatype="INT8"), "is INT8: its values must lie in [-128, 127]"),
    "negative UINT32": (tensor([-1, 1, 1, 1], datatype="UINT32"), "is UINT32: its values must lie in [0, 4294967295]"),
    "empty inputs": ({"inputs": []}, '"inputs" must be a non-empty list'),
    "missing inputs": ({"instances": [ROW]}, '"inputs" must be a non-empty list'),
    "shape does not match data length": (tensor(ROW, shape=(2, 4)), "shape [2, 4] needs 8 values, data has 4"),
    "negative shape": (tensor(ROW, shape=(-1, 4)), "negative dimension"),
    "shape not integers": (tensor(ROW, shape=("1", 4)), "shape must be a list of integers"),
    "unknown datatype": (tensor(ROW, datatype="FP99"), "unknown datatype 'FP99'"),
    "BYTES for a numeric model": (
        tensor(["1", "2", "3", "4"], datatype="BYTES"),
        "is BYTES, but this model takes numbers",
    ),
    "ragged nested data": (tensor([[1.0, 2.0], [3.0]], shape=(1, 4)), "ragged"),
    "one-dimensional tensor": (tensor(ROW, shape=(4,)), "has shape [4]"),
    "unknown feature tensor": (
        {"inputs": [{"name": n, "datatype": "FP64", "shape": [1], "data": [1.0]} for n in [*NAMES[:3], "colour"]]},
        "unknown ['colour']; missing ['petal_width']",
    ),
    "feature tensors of different lengths": (
        {
            "inputs": [
                {
                    "name": n,
                    "datatype": "FP64",
                    "shape": [1 + (n == "sepal_width")],
                    "data": [1.0] * (1 + (n == "sepal_width")),
                }
                for n in NAMES
            ]
        },
        "'sepal_width' has 2 rows",
    ),
    "unknown output": ({**tensor(ROW), "outputs": [{"name": "logits"}]}, "unknown outputs ['logits']"),
    "tensor not an object": ({"inputs": [1]}, "inputs[0] must be an object"),
    "binary size past the body": (
        {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "parameters": {"binary_data_size": 32}}]},
        "declares 32 binary bytes",
    ),
}


def assert_still_serving(served):
    response = httpx.post(f"{served.http_url}/v1/models/iris:predict", json={"instances": [ROW]})
    assert response.status_code == 200 and response.json() == {"predictions": [0]}


CASES = [("/v1/models/iris:predict", case, *V1_CASES[case]) for case in V1_CASES] + [
    ("/v2/models/iris/infer", case, *V2_CASES[case]) for case in V2_CASES
]


@pytest.mark.parametrize("route,case,body,message", CASES, ids=[f"{r.split('/')[1]}: {c}" for r, c, _, _ in CASES])
def test_client_mistakes(served_model, route, case, body, message):
    response = httpx.post(f"{served_model.http_url}{route}", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert_still_serving(served_model)


@pytest.mark.parametrize("route", ["/v1/models/iris:predict", "/v2/models/iris/infer"])
@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'{"instances": [[1,2,3,4]]'])
def test_malformed_json(served_model, route, body):
    response = httpx.post(f"{served_model.http_url}{route}", content=body)
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]
    assert_still_serving(served_model)


def test_binary_extension_header_mistakes(served_model):
    url = f"{served_model.http_url}/v2/models/iris/infer"
    for value, message in [("abc", "must be an integer"), ("999", "the body has")]:
        response = httpx.post(url, content=b'{"inputs": []}', headers={"inference-header-content-length": value})
        assert response.status_code == 400 and message in response.json()["error"]
    raw = b"\x00" * 24  # 3 doubles where 4 are declared
    header = b'{"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "parameters": {"binary_data_size": 24}}]}'
    response = httpx.post(url, content=header + raw, headers={"inference-header-content-length": str(len(header))})
    assert response.status_code == 400 and "needs 32 bytes, got 24" in response.json()["error"]
    assert_still_serving(served_model)


@pytest.mark.parametrize("route", ["/v1/models/nope:predict", "/v2/models/nope/infer"])
def test_unknown_model_is_404(served_model, route):
    response = httpx.post(f"{served_model.http_url}{route}", json={"instances": [ROW]})
    assert response.status_code == 404
    assert "nope" in response.json()["error"]
