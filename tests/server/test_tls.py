"""TLS and mutual TLS on the real server's REST and gRPC ports and on the edge runtime, with real
clients and real handshakes: Debian's curl, tritonclient (HTTP and gRPC), Python's ssl. The
certificates are made here (tests/support/certificates.py)."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.http as triton_http  # no protobufs: it shares a process with kserve's
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

from tests.support.certificates import Authority, serial_of, serial_of_peer
from tests.support.servers import start_server

pytestmark = pytest.mark.timeout(240)

ROW = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[5.1,3.5,1.4,0.2]}]}'
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca, other = Authority(directory / "ca"), Authority(directory / "other", "other CA")
    return {
        "ca": ca,
        "server": ca.issue("server"),
        "client": ca.issue("client", client=True),
        "stranger": other.issue("stranger", client=True),  # a client certificate from another CA
        "expired": ca.issue("expired", expired=True),
        "elsewhere": ca.issue("elsewhere", hosts=("other.example",)),  # not this host's name
    }


def client_context(pki, client: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"].path))
    if client:
        context.load_cert_chain(*pki[client].pair())
    return context


def tls_args(issued, client_ca=None) -> list[str]:
    args = [f"--tls_cert={issued.cert}", f"--tls_key={issued.key}"]
    return args + ([f"--tls_client_ca={client_ca}"] if client_ca else [])


def curl(url: str, *args: str) -> subprocess.CompletedProcess:
    """curl ARGS URL; ``--opt=value`` written for short, passed as curl takes it (two words)."""
    words = [word for arg in args for word in (arg.split("=", 1) if arg.startswith("--") else [arg])]
    return subprocess.run(
        [CURL, "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", *words, url],
        capture_output=True,
        text=True,
        timeout=30,
    )


TRITON_TLS_CALLS = Path(__file__).parents[1] / "support" / "tritonclient_tls_calls.py"


def triton_grpc(served, root: Path, client=None, headers: dict | None = None) -> dict:
    """One inference by tritonclient.grpc over TLS (in its own process: it cannot share one with
    kserve's protobufs): {"predict": [...]} or {"error": "StatusCode...: ..."}."""
    port = served.grpc_target.rsplit(":", 1)[1]
    options = {"target": f"localhost:{port}", "ssl": True, "root_certificates": str(root), "headers": headers}
    if client is not None:
        options |= {"private_key": str(client.key), "certificate_chain": str(client.cert)}
    done = subprocess.run(
        [sys.executable, str(TRITON_TLS_CALLS), json.dumps(options)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def infer_request() -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="FP64", shape=[1, 4])
    tensor.contents.fp64_contents.extend([5.1, 3.5, 1.4, 0.2])
    return pb.ModelInferRequest(model_name="iris", inputs=[tensor])


@pytest.fixture(scope="module")
def tls_server(demo_model_dir, pki):
    with start_server(demo_model_dir, "iris", *tls_args(pki["server"]), tls_verify=client_context(pki)) as served:
        yield served


@pytest.fixture(scope="module")
def mtls_server(demo_model_dir, pki):
    args = tls_args(pki["server"], pki["ca"].path)
    with start_server(demo_model_dir, "iris", *args, tls_verify=client_context(pki, "client")) as served:
        yield served


@needs_curl
def test_curl_infers_over_https_v1_and_v2(tls_server, pki):
    ca = f"--cacert={pki['ca'].path}"
    v2 = curl(
        f"{tls_server.http_url}/v2/models/iris/infer", ca, "-H", "content-type: application/json", "-d", ROW.decode()
    )
    assert v2.returncode == 0, v2.stderr
    assert v2.stdout.endswith("\n200") and '"data":[0]' in v2.stdout
    v1 = curl(f"{tls_server.http_url}/v1/models/iris:predict", ca, "-d", '{"instances":[[5.1,3.5,1.4,0.2]]}')
    assert v1.stdout.endswith("\n200") and '"predictions":[0]' in v1.stdout
    # Plain HTTP to the TLS port is not answered as HTTP.
    plain = curl(tls_server.http_url.replace("https", "http") + "/v2/health/ready")
    assert not plain.stdout.endswith("\n200")


def test_tls_1_2_and_1_3_are_served_with_modern_ciphers_only(tls_server, pki):
    port = int(tls_server.http_url.rsplit(":", 1)[1])
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        context = client_context(pki)
        context.minimum_version = context.maximum_version = version
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.version() == version.name.replace("TLSv1_", "TLSv1.")
            if version is ssl.TLSVersion.TLSv1_2:
                assert tls.cipher()[0].startswith("ECDHE-") and (
                    "GCM" in tls.cipher()[0] or "CHACHA20" in tls.cipher()[0]
                )
    # A TLS 1.2 client offering only RSA key exchange with CBC (no forward secrecy) is refused by the server.
    weak = client_context(pki)
    weak.maximum_version = ssl.TLSVersion.TLSv1_2
    weak.set_ciphers("AES128-SHA:AES256-SHA")
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLError):
        weak.wrap_socket(raw, server_hostname="localhost")


def test_tritonclient_http_and_grpc_over_tls(tls_server, pki):
    import gevent.ssl

    def context_factory(*args, **kwargs):
        return gevent.ssl.create_default_context(cafile=str(pki["ca"].path))

    url = tls_server.http_url.removeprefix("https://")
    client = triton_http.InferenceServerClient(url, ssl=True, ssl_context_factory=context_factory)
    tensor = triton_http.InferInput("x", [1, 4], "FP64")
    tensor.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]]))
    assert client.infer("iris", [tensor]).as_numpy("predict").tolist() == [0]
    client.close()
    assert triton_grpc(tls_server, pki["ca"].path) == {"predict": [0]}


@needs_curl
def test_expired_or_misnamed_certificates_are_refused_by_clients(demo_model_dir, pki):
    for name, curl_code in (("expired", 60), ("elsewhere", 60)):
        # The server serves them (nothing checks the dates of a certificate one is told to serve);
        # the clients refuse: curl, and gRPC.
        with start_server(demo_model_dir, "iris", *tls_args(pki[name]), tls_verify=False) as served:
            answer = curl(f"{served.http_url}/v2/health/ready", f"--cacert={pki['ca'].path}")
            assert answer.returncode == curl_code, (name, answer.stderr)
            assert triton_grpc(served, pki["ca"].path)["error"].startswith("StatusCode.UNAVAILABLE")


@needs_curl
def test_mutual_tls_needs_a_client_certificate_from_the_ca(mtls_server, pki):
    ca = f"--cacert={pki['ca'].path}"
    url = f"{mtls_server.http_url}/v2/models/iris/infer"
    good = curl(url, ca, f"--cert={pki['client'].cert}", f"--key={pki['client'].key}", "-d", ROW.decode())
    assert good.stdout.endswith("\n200"), good.stderr
    for client_args in ([], [f"--cert={pki['stranger'].cert}", f"--key={pki['stranger'].key}"]):
        refused = curl(url, ca, *client_args, "-d", ROW.decode())
        assert refused.returncode != 0 and not refused.stdout.strip("\n0"), refused
    # TLS 1.2 says so in the handshake itself.
    port = int(mtls_server.http_url.rsplit(":", 1)[1])
    context = client_context(pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port)) as raw, pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="localhost")


def test_mutual_tls_on_grpc(mtls_server, pki):
    assert triton_grpc(mtls_server, pki["ca"].path, pki["client"]) == {"predict": [0]}
    for client in (None, pki["stranger"]):
        assert triton_grpc(mtls_server, pki["ca"].path, client)["error"].startswith("StatusCode.UNAVAILABLE")


def test_edge_runtime_serves_tls_and_mutual_tls(demo_model_dir, pki):
    args = tls_args(pki["server"], pki["ca"].path)
    with start_server(demo_model_dir, "iris", *args, edge=True, tls_verify=client_context(pki, "client")) as served:
        port = int(served.http_url.rsplit(":", 1)[1])
        connection = http.client.HTTPSConnection("localhost", port, context=client_context(pki, "client"), timeout=10)
        connection.request("POST", "/v2/models/iris/infer", ROW, {"content-type": "application/json"})
        assert connection.getresponse().status == 200
        anonymous = http.client.HTTPSConnection("localhost", port, context=client_context(pki), timeout=10)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            anonymous.request("GET", "/v2/health/ready")
            anonymous.getresponse()


def peer_serial(port: int, context: ssl.SSLContext) -> int:
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return serial_of_peer(tls.getpeercert(binary_form=True))


def test_certificate_rotated_on_disk_under_load_loses_no_request(demo_model_dir, pki, tmp_path):
    """16 clients (REST on kept-alive and on new connections, grpcio on long-lived and on new
    channels) send requests while the certificate and key are rewritten in place, one file after
    the other as a careless writer would; then the new certificate is served on REST and gRPC."""
    old, new_ca = pki["server"], Authority(tmp_path / "new-ca", "new CA")
    new = new_ca.issue("server-2")
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    shutil.copy(old.cert, cert)
    shutil.copy(old.key, key)
    both_cas = tmp_path / "both.pem"
    both_cas.write_bytes(pki["ca"].path.read_bytes() + new_ca.path.read_bytes())
    trust_both = ssl.create_default_context(cafile=str(both_cas))
    args = [f"--tls_cert={cert}", f"--tls_key={key}", "--tls_reload_seconds=0.2"]
    with start_server(demo_model_dir, "iris", *args, tls_verify=trust_both) as served:
        port = int(served.http_url.rsplit(":", 1)[1])
        grpc_port = served.grpc_target.rsplit(":", 1)[1]
        stop, failures, counts = threading.Event(), [], [0] * 16

        def rest(index: int, keep_alive: bool):
            connection = None
            while not stop.is_set():
                try:
                    if connection is None or not keep_alive:
                        connection = http.client.HTTPSConnection("localhost", port, context=trust_both, timeout=10)
                    connection.request("POST", "/v2/models/iris/infer", ROW, {"content-type": "application/json"})
                    response = connection.getresponse()
                    response.read()
                    if response.status != 200:
                        failures.append(f"REST {response.status}")
                    counts[index] += 1
                except Exception as exc:
                    failures.append(f"REST {type(exc).__name__}: {exc}")
                if not keep_alive:
                    connection.close()

        credentials = grpc.ssl_channel_credentials(both_cas.read_bytes())

        def grpc_load(index: int, new_channels: bool):
            channel = None
            while not stop.is_set():
                try:
                    if channel is None or (new_channels and counts[index] % 5 == 0):
                        if channel is not None:
                            channel.close()
                        channel = grpc.secure_channel(f"localhost:{grpc_port}", credentials)
                    answer = GRPCInferenceServiceStub(channel).ModelInfer(infer_request(), timeout=10)
                    assert np.frombuffer(answer.raw_output_contents[0], np.int64).tolist() == [0]
                    counts[index] += 1
                except Exception as exc:
                    failures.append(f"gRPC {type(exc).__name__}: {exc}")
            if channel is not None:
                channel.close()

        threads = [threading.Thread(target=rest, args=(i, i % 2 == 0)) for i in range(8)]
        threads += [threading.Thread(target=grpc_load, args=(i, i % 2 == 0)) for i in range(8, 16)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        before = list(counts)
        cert.write_bytes(new.cert.read_bytes())
        time.sleep(0.5)  # a poll sees the new certificate with the old key: refused, the old pair serves
        key.write_bytes(new.key.read_bytes())
        deadline = time.monotonic() + 15
        while peer_serial(port, trust_both) != serial_of(new.cert):
            assert time.monotonic() < deadline, "the new certificate was not served within 15 s"
            time.sleep(0.2)
        time.sleep(2)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert failures == []
        assert all(after > was for after, was in zip(counts, before, strict=True)), counts  # every client kept going
        # gRPC serves the new one too: tritonclient trusting only the new CA connects.
        assert triton_grpc(served, new_ca.path) == {"predict": [0]}
        assert "not reloaded" in served.log()  # the half-written pair was refused, and said so


def test_edge_runtime_picks_up_a_renewed_certificate(demo_model_dir, pki, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    shutil.copy(pki["server"].cert, cert)
    shutil.copy(pki["server"].key, key)
    renewed = pki["ca"].issue("edge-renewed")
    args = [f"--tls_cert={cert}", f"--tls_key={key}", "--tls_reload_seconds=0.2"]
    with start_server(demo_model_dir, "iris", *args, edge=True, tls_verify=client_context(pki)) as served:
        port = int(served.http_url.rsplit(":", 1)[1])
        assert peer_serial(port, client_context(pki)) == serial_of(pki["server"].cert)
        key.write_bytes(renewed.key.read_bytes())  # the key first this time: refused until the certificate follows
        cert.write_bytes(renewed.cert.read_bytes())
        deadline = time.monotonic() + 15
        while peer_serial(port, client_context(pki)) != serial_of(renewed.cert):
            assert time.monotonic() < deadline, "the renewed certificate was not served within 15 s"
            time.sleep(0.2)
