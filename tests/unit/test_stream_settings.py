"""The stream consumer's settings: required topics, security combinations, what reaches aiokafka."""

import datetime
import ssl

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import BasicConstraints, CertificateBuilder, Name, NameAttribute, random_serial_number
from cryptography.x509.oid import NameOID

from model_server.stream.consumer import connection_options
from model_server.stream.settings import StreamSettings

TOPICS = ["--input_topic=in", "--output_topic=out"]


def parse(argv, environ=None):
    return StreamSettings.from_args(argv, environ=environ or {}, prog="python -m model_server.stream")


def test_flags_and_environment():
    settings = parse(["--input_topic=in"], {"MODEL_SERVER_OUTPUT_TOPIC": "out", "MODEL_SERVER_MAX_IN_FLIGHT": "64"})
    assert (settings.input_topic, settings.output_topic, settings.max_in_flight) == ("in", "out", 64)
    assert settings.error_topic is None and settings.group_id == "model-server"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--output_topic=out"], "--input_topic is required"),
        (["--input_topic=in"], "--output_topic is required"),
        (["--input_topic=t", "--output_topic=t"], "must differ"),
        ([*TOPICS, "--max_in_flight=0"], "--max_in_flight must be at least 1"),
        ([*TOPICS, "--security_protocol=SASL_SSL"], "--sasl_mechanism must be one of"),
        ([*TOPICS, "--security_protocol=SASL_PLAINTEXT", "--sasl_mechanism=PLAIN"], "--sasl_username and"),
        ([*TOPICS, "--ssl_certfile=c.pem"], "go together"),
        ([*TOPICS, "--security_protocol=TLS"], "invalid choice"),
        ([*TOPICS, "--model_repository=/models"], "answers for one model"),
    ],
)
def test_unusable_settings_exit_2_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as caught:
        parse(argv)
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_sasl_and_tls_passed_through_to_the_client(tmp_path):

    key = ec.generate_private_key(ec.SECP256R1())
    name = Name([NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    settings = parse(
        [
            *TOPICS,
            "--security_protocol=SASL_SSL",
            "--sasl_mechanism=SCRAM-SHA-512",
            "--sasl_username=u",
            f"--ssl_cafile={ca}",
            "--bootstrap_servers=a:9093,b:9093",
        ],
        {"MODEL_SERVER_SASL_PASSWORD": "secret"},
    )
    options = connection_options(settings)
    assert options["bootstrap_servers"] == ["a:9093", "b:9093"] and options["security_protocol"] == "SASL_SSL"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "u",
        "secret",
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]


def test_plaintext_has_no_security_options():
    options = connection_options(parse(TOPICS))
    assert set(options) == {"bootstrap_servers", "client_id", "security_protocol"}


def test_tls_flags_are_named_as_the_servers_and_the_old_names_still_work(capsys):
    new = parse([*TOPICS, "--tls_ca=ca.pem", "--tls_cert=c.pem", "--tls_key=k.pem"])
    old = parse([*TOPICS, "--ssl_cafile=ca.pem", "--ssl_certfile=c.pem", "--ssl_keyfile=k.pem"])
    old_env = parse(
        TOPICS,
        {
            "MODEL_SERVER_SSL_CAFILE": "ca.pem",
            "MODEL_SERVER_SSL_CERTFILE": "c.pem",
            "MODEL_SERVER_SSL_KEYFILE": "k.pem",
        },
    )
    for settings in (new, old, old_env):
        assert (settings.tls_ca, settings.tls_cert, settings.tls_key) == ("ca.pem", "c.pem", "k.pem")
    # The new variable wins over the old one beside it.
    both = {"MODEL_SERVER_TLS_CA": "new.pem", "MODEL_SERVER_SSL_CAFILE": "old.pem"}
    assert parse(TOPICS, both).tls_ca == "new.pem"
    with pytest.raises(SystemExit):
        parse(["--help"])
    listed = capsys.readouterr().out
    assert "--tls_ca" in listed and "--ssl_cafile" not in listed


def test_workers_a_number_or_auto_from_the_cgroup_cpu_limit(tmp_path, monkeypatch):
    (tmp_path / "cpu.max").write_text("300000 100000\n")  # a 3-CPU limit
    monkeypatch.setenv("MODEL_SERVER_CGROUP_ROOT", str(tmp_path))
    assert parse(TOPICS).workers == 1
    assert parse([*TOPICS, "--workers=auto"]).workers == 3
    assert parse(TOPICS, {"MODEL_SERVER_WORKERS": "2"}).workers == 2
    with pytest.raises(SystemExit) as exited:
        parse([*TOPICS, "--workers=0"])
    assert exited.value.code == 2
