"""Fuzzing: no request a client can send makes the server fail with a 5xx / INTERNAL.

The V1/V2 JSON fuzz runs in-process against the ASGI routes (thousands of bodies in seconds);
the gRPC fuzz against the real server, through a real channel.
"""

from __future__ import annotations

import asyncio

import grpc
import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from model_server.core.codec import NUMPY_DTYPES
from model_server.core.dataplane import DataPlane, FixedRegistry, ServedModel
from model_server.core.predictor import Predictor
from model_server.http.routes import DataPlaneRoutes
from model_server.kserve.grpc import GRPC_CONTENTS_FIELD

DATATYPES = [*NUMPY_DTYPES, "FP99", "int32", ""]
NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
)
SHAPES = st.one_of(
    st.lists(st.integers(-2, 6), max_size=4),
    st.lists(st.just(1), min_size=60, max_size=120),  # many dimensions
    st.just([2**31, 4]),
    st.lists(st.integers(0, 3), max_size=2).map(lambda s: [*s, 4]),
)
DATA = st.recursive(st.lists(NUMBERS, max_size=8), lambda inner: st.lists(inner, max_size=4), max_leaves=40)
TENSOR = st.fixed_dictionaries(
    {"name": st.sampled_from(["x", "sepal_length", "input-0"]), "datatype": st.sampled_from(DATATYPES)},
    optional={
        "shape": SHAPES,
        "data": st.one_of(DATA, NUMBERS),
        "parameters": st.one_of(st.none(), st.fixed_dictionaries({"binary_data_size": st.integers(-1, 40)})),
    },
)
V2_BODY = st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(TENSOR, max_size=5), st.none(), st.text(max_size=2))},
    optional={
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["predict", "label", "x"])}), max_size=3),
        "parameters": st.dictionaries(st.sampled_from(["binary_data_output", "x"]), st.booleans(), max_size=2),
        "id": st.one_of(st.text(max_size=4), st.integers()),
    },
)
V1_BODY = st.fixed_dictionaries(
    {"instances": st.one_of(DATA, st.lists(st.dictionaries(st.sampled_from(["sepal_length", "x"]), NUMBERS)))},
    optional={"parameters": st.dictionaries(st.sampled_from(["probabilities", "labels"]), NUMBERS, max_size=2)},
)


class Downstream:
    async def __call__(self, scope, receive, send):
        raise AssertionError(f"an inference request reached the app behind: {scope['path']}")


@pytest.fixture(scope="module")
def routes(demo_model_dir):
    registry = FixedRegistry(iris=ServedModel("iris", Predictor.load(demo_model_dir)))
    return DataPlaneRoutes(Downstream(), DataPlane(registry), max_body_bytes=1 << 20)


async def post(routes, path: str, body: bytes, headers=None) -> httpx.Response:
    transport = httpx.ASGITransport(app=routes)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, content=body, headers=headers)


@pytest.mark.parametrize("digits", ["1" * 4301, "9" * 25, "-3", "1e3", "0x10"])
def test_header_lengths_no_integer_could_be_are_client_errors(routes, digits):
    """A number Python cannot parse (more than 4300 digits), one past any body, or not a number."""
    body = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]})
    # Large enough to go to the body decoder's helper, and small: both paths.
    for padded in (body, body + b" " * (300 * 1024)):
        response = asyncio.run(
            post(routes, "/v2/models/iris/infer", padded, {"inference-header-content-length": digits})
        )
        assert response.status_code == 400, response.text
        assert "inference-header-content-length" in response.json()["error"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=V2_BODY, binary_tail=st.binary(max_size=40), with_header=st.booleans())
def test_v2_bodies_never_get_a_5xx(routes, body, binary_tail, with_header):
    header = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS) if _encodable(body) else b"{}"
    headers = {"inference-header-content-length": str(len(header))} if with_header else None
    response = asyncio.run(
        post(routes, "/v2/models/iris/infer", header + (binary_tail if with_header else b""), headers)
    )
    assert response.status_code < 500, (body, response.text)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=V1_BODY)
def test_v1_bodies_never_get_a_5xx(routes, body):
    payload = orjson.dumps(body) if _encodable(body) else b'{"instances": []}'
    response = asyncio.run(post(routes, "/v1/models/iris:predict", payload))
    assert response.status_code < 500, (body, response.text)


def _encodable(doc) -> bool:
    try:
        orjson.dumps(doc)
        return True
    except TypeError:  # integers past 64 bits: send them as text instead
        return False


@pytest.mark.parametrize("depth", [65, 100_000])
def test_shapes_of_many_dimensions_are_client_errors(routes, depth):
    body = {"inputs": [{"name": "x", "datatype": "FP16", "shape": [1] * depth, "data": [1.0]}]}
    response = asyncio.run(post(routes, "/v2/models/iris/infer", orjson.dumps(body)))
    assert response.status_code == 400 and f"has {depth} dimensions" in response.json()["error"]


# -- gRPC against the real server ------------------------------------------------------------

CONTENT_VALUES = {
    "bool_contents": st.lists(st.booleans(), max_size=8),
    "int_contents": st.lists(st.integers(-(2**31), 2**31 - 1), max_size=8),
    "int64_contents": st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8),
    "uint_contents": st.lists(st.integers(0, 2**32 - 1), max_size=8),
    "uint64_contents": st.lists(st.integers(0, 2**64 - 1), max_size=8),
    "fp32_contents": st.lists(st.floats(width=32), max_size=8),
    "fp64_contents": st.lists(st.floats(), max_size=8),
    "bytes_contents": st.lists(st.binary(max_size=4), max_size=8),
}


@st.composite
def grpc_requests(draw):
    inputs, raw = [], []
    use_raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        datatype = draw(st.sampled_from(DATATYPES))
        shape = draw(st.lists(st.integers(0, 5), max_size=3) | st.just([1] * 70))
        tensor = pb.ModelInferRequest.InferInputTensor(name=draw(st.sampled_from(["x", "y"])), datatype=datatype)
        tensor.shape.extend(shape)
        if use_raw:
            raw.append(draw(st.binary(max_size=80)))
        else:
            field = draw(st.sampled_from([GRPC_CONTENTS_FIELD.get(datatype, "fp64_contents"), *CONTENT_VALUES]))
            getattr(tensor.contents, field).extend(draw(CONTENT_VALUES[field]))
        inputs.append(tensor)
    if use_raw and draw(st.booleans()):
        raw.append(b"\0" * 8)  # a raw_input_contents count that disagrees
    return pb.ModelInferRequest(
        model_name="iris",
        model_version=draw(st.sampled_from(["", "1", "2"])),
        inputs=inputs,
        raw_input_contents=raw,
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in draw(st.lists(st.text(max_size=3)))],
    )


@pytest.fixture(scope="module")
def stub(served_model):
    with grpc.insecure_channel(served_model.grpc_target) as channel:
        yield GRPCInferenceServiceStub(channel)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=grpc_requests())
def test_grpc_requests_never_get_internal(stub, request):
    try:
        stub.ModelInfer(request, timeout=10)
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), error.details()


@pytest.mark.parametrize(
    "datatype,field,value",
    [("INT8", "int_contents", 128), ("UINT8", "uint_contents", 256), ("INT16", "int_contents", 65536)],
)
def test_grpc_integers_out_of_range_are_invalid_argument_like_rest(stub, served_model, datatype, field, value):
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype=datatype, shape=[1, 4])
    getattr(tensor.contents, field).extend([value, 1, 1, 1])
    with pytest.raises(grpc.RpcError) as error:
        stub.ModelInfer(pb.ModelInferRequest(model_name="iris", inputs=[tensor]))
    body = {"inputs": [{"name": "x", "datatype": datatype, "shape": [1, 4], "data": [value, 1, 1, 1]}]}
    rest = httpx.post(f"{served_model.http_url}/v2/models/iris/infer", json=body)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.value.details() == rest.json()["error"] and "must lie in" in rest.json()["error"]


# -- credentials: whatever a client puts in the headers, a refusal is a 401, never a 5xx ---------

HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=300)
CREDENTIAL = st.one_of(
    HEADER_TEXT,
    st.builds(lambda s: "Bearer " + s, HEADER_TEXT),
    # JWT-shaped: three base64url-ish segments
    st.builds(
        lambda a, b, c: f"Bearer {a}.{b}.{c}",
        *[st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=", max_size=80)] * 3,
    ),
)


@pytest.fixture(scope="module")
def guarded_routes(demo_model_dir, tmp_path_factory):
    """The same routes behind each --auth mode (JWKS: a real RSA key's)."""
    import json

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    from model_server.core import auth

    directory = tmp_path_factory.mktemp("credentials")
    keys = directory / "api-keys"
    keys.write_text(f"{auth.hash_api_key('the-key')} client\n")
    public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    jwks = directory / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public)), "kid": "k"}]}))
    registry = FixedRegistry(iris=ServedModel("iris", Predictor.load(demo_model_dir)))
    authenticators = [
        auth.build("api_key", api_keys_file=str(keys)),
        auth.build("jwt", jwks=str(jwks), issuer="i", audience="a"),
    ]
    return [DataPlaneRoutes(Downstream(), DataPlane(registry), 1 << 20, authenticator=a) for a in authenticators]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(authorization=CREDENTIAL, api_key=st.one_of(st.none(), HEADER_TEXT))
def test_any_credential_header_is_refused_with_401_never_5xx(guarded_routes, authorization, api_key):
    headers = {"authorization": authorization, **({"x-api-key": api_key} if api_key is not None else {})}
    headers = {name: value.encode("latin-1") for name, value in headers.items()}  # any byte a header may hold
    body = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}'
    for routes in guarded_routes:
        response = asyncio.run(post(routes, "/v2/models/iris/infer", body, headers))
        assert response.status_code == 401, (headers, response.status_code, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
