"""Data-plane authentication (--auth api_key | jwt) on the real server's REST and gRPC and on the
edge runtime: a good credential is let in, a missing, wrong, revoked or expired one gets 401 with
WWW-Authenticate (REST) or UNAUTHENTICATED (gRPC) on every route that serves data, and health and
readiness stay open. Clients: httpx, grpcio and tritonclient; tokens signed here with PyJWT."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

from model_server.core.auth import hash_api_key
from tests.support.servers import start_server

pytestmark = pytest.mark.timeout(180)

ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
ISSUER, AUDIENCE = "https://issuer.test", "model-server"

# (method, path, body): every REST route that serves data or says something about the server;
# with a credential each answers 200 but those in NOT_HERE (/docs is off by default).
NOT_HERE = ("/docs", "/no/such/route")
DATA_ROUTES = [
    ("POST", "/v2/models/iris/infer", ROW),
    ("POST", "/v2/models/iris/versions/1/infer", ROW),
    ("POST", "/v1/models/iris:predict", {"instances": [[5.1, 3.5, 1.4, 0.2]]}),
    ("POST", "/invocations", {"inputs": [[5.1, 3.5, 1.4, 0.2]]}),  # MLflow's scoring protocol
    ("GET", "/version", None),
    ("GET", "/v2/models/iris", None),
    ("GET", "/v2/models/iris/versions/1", None),
    ("GET", "/v2", None),  # KServe's route behind ours
    ("GET", "/v1/models", None),  # KServe's
    ("POST", "/v2/repository/index", {}),
    ("GET", "/openapi.json", None),  # KServe's FastAPI
    ("GET", "/docs", None),
    ("GET", "/no/such/route", None),
]
OPEN_ROUTES = [
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/iris/ready",
    "/v1/models/iris",
    "/",
    "/ping",
    "/health",
]


def call(base: str, method: str, path: str, body, headers: dict | None = None) -> httpx.Response:
    return httpx.request(method, base + path, json=body, headers=headers or {}, timeout=10)


def assert_refused(response: httpx.Response, error: str | None = None) -> None:
    assert response.status_code == 401, (response.request.url, response.status_code, response.text)
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="model-server"')
    if error:
        assert f'error="{error}"' in challenge
    assert "error" in response.json()


TRITON_CALLS = Path(__file__).parents[1] / "support" / "tritonclient_tls_calls.py"


def triton_grpc(served, headers: dict | None) -> dict:
    options = {"target": served.grpc_target, "headers": headers}
    done = subprocess.run(
        [sys.executable, str(TRITON_CALLS), json.dumps(options)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def grpc_stub(served):
    channel = grpc.insecure_channel(served.grpc_target)
    return channel, grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)


def grpc_infer_request() -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend([5.1, 3.5, 1.4, 0.2])
    return pb.ModelInferRequest(model_name="iris", inputs=[tensor])


# (rpc, request, the code with a credential).
GRPC_DATA_CALLS = [
    ("ModelInfer", grpc_infer_request, grpc.StatusCode.OK),
    ("ModelMetadata", lambda: pb.ModelMetadataRequest(name="iris"), grpc.StatusCode.OK),
    ("ServerMetadata", pb.ServerMetadataRequest, grpc.StatusCode.OK),
    ("RepositoryModelLoad", lambda: pb.RepositoryModelLoadRequest(model_name="iris"), grpc.StatusCode.OK),
]
GRPC_OPEN_CALLS = [
    ("ServerLive", pb.ServerLiveRequest),
    ("ServerReady", pb.ServerReadyRequest),
    ("ModelReady", lambda: pb.ModelReadyRequest(name="iris")),
]


def grpc_code(stub, rpc: str, request, metadata=()) -> grpc.StatusCode:
    try:
        getattr(stub, rpc)(request, metadata=metadata, timeout=10)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


# -- API keys ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "api-keys"
    path.write_text(f"# digests of the keys\n{hash_api_key('key-of-alice')} alice\n{hash_api_key('key-of-bob')} bob\n")
    return path


@pytest.fixture(scope="module")
def api_key_server(demo_model_dir, keys_file):
    args = ["--auth=api_key", f"--auth_api_keys_file={keys_file}", "--auth_reload_seconds=0.2", "--repository_api"]
    with start_server(demo_model_dir, "iris", *args) as served:
        yield served


def test_api_key_refuses_every_data_route_without_a_valid_key(api_key_server):
    base = api_key_server.http_url
    for method, path, body in DATA_ROUTES:
        assert_refused(call(base, method, path, body))
        assert_refused(call(base, method, path, body, {"x-api-key": "key-of-mallory"}), "invalid_token")
        assert_refused(call(base, method, path, body, {"authorization": "Bearer key-of-mallory"}), "invalid_token")
        assert_refused(call(base, method, path, body, {"authorization": "Basic a2V5LW9mLWFsaWNl"}))
    for path in OPEN_ROUTES:
        assert call(base, "GET", path, None).status_code == 200, path
    assert call(base, "GET", "/metrics", None).status_code == 200  # open unless --auth_metrics


def test_api_key_lets_each_client_in_with_either_header(api_key_server):
    base = api_key_server.http_url
    for headers in ({"authorization": "Bearer key-of-alice"}, {"x-api-key": "key-of-bob"}):
        for method, path, body in DATA_ROUTES:
            response = call(base, method, path, body, headers)
            expected = 404 if path in NOT_HERE else 200
            assert response.status_code == expected, (path, response.text)
        answer = call(base, "POST", "/v2/models/iris/infer", ROW, headers).json()
        assert answer["outputs"][0]["data"] == [0]


def test_api_key_on_grpc(api_key_server):
    channel, stub = grpc_stub(api_key_server)
    with channel:
        for rpc, request, expected in GRPC_DATA_CALLS:
            assert grpc_code(stub, rpc, request()) == grpc.StatusCode.UNAUTHENTICATED, rpc
            assert grpc_code(stub, rpc, request(), [("x-api-key", "nope")]) == grpc.StatusCode.UNAUTHENTICATED
            assert grpc_code(stub, rpc, request(), [("authorization", "Bearer key-of-alice")]) == expected
        for rpc, request in GRPC_OPEN_CALLS:
            assert grpc_code(stub, rpc, request()) == grpc.StatusCode.OK, rpc
    # tritonclient sends the key as a header of each call (in its own process: its protobufs and
    # kserve's cannot share one).
    assert triton_grpc(api_key_server, {"x-api-key": "key-of-bob"}) == {"predict": [0]}
    assert triton_grpc(api_key_server, None)["error"].startswith("StatusCode.UNAUTHENTICATED")


def test_keys_file_is_read_again_a_revoked_client_is_refused(api_key_server, keys_file):
    base, original = api_key_server.http_url, keys_file.read_text()
    try:
        keys_file.write_text(f"{hash_api_key('key-of-bob')} bob\n{hash_api_key('key-of-carol')} carol\n")
        deadline = time.monotonic() + 10
        while call(base, "GET", "/v2/models/iris", None, {"x-api-key": "key-of-carol"}).status_code != 200:
            assert time.monotonic() < deadline, "the new key was not accepted within 10 s"
            time.sleep(0.1)
        assert_refused(call(base, "GET", "/v2/models/iris", None, {"x-api-key": "key-of-alice"}), "invalid_token")
        # A broken file keeps the keys read before, and the log says why.
        keys_file.write_text("not a digest\n")
        time.sleep(1)
        assert call(base, "GET", "/v2/models/iris", None, {"x-api-key": "key-of-carol"}).status_code == 200
        assert "not reloaded" in api_key_server.log()
    finally:
        keys_file.write_text(original)


def test_metrics_behind_the_key_with_auth_metrics(demo_model_dir, keys_file):
    args = ["--auth=api_key", f"--auth_api_keys_file={keys_file}", "--auth_metrics"]
    with start_server(demo_model_dir, "iris", *args) as served:
        assert_refused(call(served.http_url, "GET", "/metrics", None))
        assert call(served.http_url, "GET", "/metrics", None, {"x-api-key": "key-of-alice"}).status_code == 200
        assert call(served.http_url, "GET", "/v2/health/ready", None).status_code == 200


def test_management_token_still_guards_the_repository_api(demo_model_dir, keys_file):
    """With a management token, the repository API takes that token (not a data key)."""
    args = ["--auth=api_key", f"--auth_api_keys_file={keys_file}", "--repository_api", "--management_token=admin"]
    with start_server(demo_model_dir, "iris", *args) as served:
        base = served.http_url
        assert call(base, "POST", "/v2/repository/index", {}, {"x-api-key": "key-of-alice"}).status_code == 401
        assert call(base, "POST", "/v2/repository/index", {}, {"authorization": "Bearer admin"}).status_code == 200
        assert_refused(call(base, "POST", "/v2/models/iris/infer", ROW, {"authorization": "Bearer admin"}))


# -- JWT -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    return {"key": key, "stranger": stranger, "jwks": jwks, "public_pem": key.public_key()}


def token(signing, key="key", kid="k1", algorithm="RS256", **claims) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "client-1", "iat": now, "exp": now + 300, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, signing[key], algorithm=algorithm, headers={"kid": kid})


def jwt_args(signing) -> list[str]:
    return [
        "--auth=jwt",
        f"--auth_jwks={signing['jwks']}",
        f"--auth_jwt_issuer={ISSUER}",
        f"--auth_jwt_audience={AUDIENCE}",
    ]


@pytest.fixture(scope="module")
def jwt_server(demo_model_dir, signing):
    with start_server(demo_model_dir, "iris", *jwt_args(signing), "--repository_api") as served:
        yield served


def bad_tokens(signing) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization

    public = (
        signing["key"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}, None, algorithm="none")
    return {
        "expired": token(signing, exp=int(time.time()) - 120, iat=int(time.time()) - 600),
        "wrong audience": token(signing, aud="someone-else"),
        "wrong issuer": token(signing, iss="https://evil.test"),
        "no expiry": token(signing, exp=None),
        "another key": token(signing, key="stranger"),
        "unknown kid": token(signing, kid="k2"),
        "alg none": unsigned,
        # The public key used as an HMAC secret: the classic algorithm confusion.
        "HS256 with the public key": _hs256_with(public),
        "garbage": "not.a.jwt",
    }


def _hs256_with(secret: bytes) -> str:
    """An HS256 token signed with ``secret`` by hand (PyJWT refuses a PEM as an HMAC key)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}).encode())
    signature = b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
    return f"{header}.{body}.{signature}"


def test_jwt_accepted_and_every_bad_token_refused_on_rest(jwt_server, signing):
    base, good = jwt_server.http_url, {"authorization": f"Bearer {token(signing)}"}
    for method, path, body in DATA_ROUTES:
        assert_refused(call(base, method, path, body))
        expected = 404 if path in NOT_HERE else 200
        assert call(base, method, path, body, good).status_code == expected, path
    for reason, bad in bad_tokens(signing).items():
        response = call(base, "POST", "/v2/models/iris/infer", ROW, {"authorization": f"Bearer {bad}"})
        assert_refused(response, "invalid_token")
        assert "not valid" in response.json()["error"], reason
    for path in OPEN_ROUTES:
        assert call(base, "GET", path, None).status_code == 200, path


def test_jwt_on_grpc(jwt_server, signing):
    channel, stub = grpc_stub(jwt_server)
    good = [("authorization", f"Bearer {token(signing)}")]
    with channel:
        for rpc, request, expected in GRPC_DATA_CALLS:
            assert grpc_code(stub, rpc, request()) == grpc.StatusCode.UNAUTHENTICATED, rpc
            assert grpc_code(stub, rpc, request(), good) == expected, rpc
        for bad in bad_tokens(signing).values():
            code = grpc_code(stub, "ModelInfer", grpc_infer_request(), [("authorization", f"Bearer {bad}")])
            assert code == grpc.StatusCode.UNAUTHENTICATED
        for rpc, request in GRPC_OPEN_CALLS:
            assert grpc_code(stub, rpc, request()) == grpc.StatusCode.OK, rpc


# -- the edge runtime ----------------------------------------------------------------------------

EDGE_DATA_ROUTES = [
    r for r in DATA_ROUTES if r[1] in ("/v2/models/iris/infer", "/v1/models/iris:predict", "/v2/models/iris", "/v2")
]


@pytest.mark.parametrize("mode", ["api_key", "jwt"])
def test_edge_runtime_authenticates_the_same_way(demo_model_dir, keys_file, signing, mode):
    if mode == "api_key":
        args, good = ["--auth=api_key", f"--auth_api_keys_file={keys_file}"], {"x-api-key": "key-of-alice"}
    else:
        args, good = jwt_args(signing), {"authorization": f"Bearer {token(signing)}"}
    with start_server(demo_model_dir, "iris", *args, edge=True) as served:
        for method, path, body in EDGE_DATA_ROUTES:
            assert_refused(call(served.http_url, method, path, body))
            assert call(served.http_url, method, path, body, good).status_code == 200, path
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/iris/ready", "/"):
            assert call(served.http_url, "GET", path, None).status_code == 200, path
