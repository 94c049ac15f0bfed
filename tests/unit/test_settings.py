"""Settings: every field is a flag and a MODEL_SERVER_* variable; flags win; bad values name themselves."""

import dataclasses
import importlib
import subprocess
import sys

import pytest

from model_server.core.settings import ModelSettings, env_name, flag_of, is_boolean
from model_server.kserve.__main__ import parse_settings
from model_server.kserve.settings import ServerSettings
from model_server.rollout.settings import RolloutSettings
from tests.support.tools import REPO

# A valid value, different from the default, for every setting (as a string, as an env var holds it).
OTHER_VALUES = {
    "model_name": ("wine", "wine"),
    "model_dir": ("/models/wine", "/models/wine"),
    "model_repository": ("/mnt/models", "/mnt/models"),
    "version_policy": ("latest:2", "latest:2"),
    "watch": ("true", True),
    "watch_interval_seconds": ("0.5", 0.5),
    "backend": ("sklearn", "sklearn"),
    "max_batch_size": ("64", 64),
    "max_batch_wait_ms": ("2.5", 2.5),
    "require_sha256": ("true", True),
    "onnx_cache_dir": ("/var/cache/onnx", "/var/cache/onnx"),
    "onnx_intra_op_threads": ("4", 4),
    "onnx_inter_op_threads": ("2", 2),
    "onnx_graph_optimization": ("basic", "basic"),
    "onnx_warmup": ("true", True),
    "http_port": ("9000", 9000),
    "protocols": ("v2,mlflow", ("v2", "mlflow")),
    "grpc_port": ("9001", 9001),
    "enable_grpc": ("false", False),
    "max_request_bytes": ("1024", 1024),
    "max_request_rows": ("10", 10),
    "max_header_bytes": ("4096", 4096),
    "header_timeout_seconds": ("2.5", 2.5),
    "drain_seconds": ("0", 0.0),
    "grace_seconds": ("3", 3.0),
    "repository_api": ("false", False),
    "management_token": ("s3cret", "s3cret"),
    "management_token_file": (__file__, __file__),
    "access_log": ("true", True),
    "enable_latency_logging": ("yes", True),
    "workers": ("1", 1),
    "max_threads": ("8", 8),
    "max_asyncio_workers": ("3", 3),
    "enable_docs_url": ("on", True),
    "access_log_format": ("%(h)s", "%(h)s"),
    "event_loop": ("asyncio", "asyncio"),
    "timeout_keep_alive": ("5", 5),
    "ssl_certfile": ("/tls/cert.pem", "/tls/cert.pem"),
    "ssl_keyfile": ("/tls/key.pem", "/tls/key.pem"),
    "configure_logging": ("0", False),
    "log_config_file": ("/etc/log.yaml", "/etc/log.yaml"),
    "grpc_max_send_message_length": ("1000", 1000),
    "grpc_max_receive_message_length": ("2000", 2000),
    "drift": ("false", False),
    "drift_window_rows": ("100", 100),
    "drift_window_seconds": ("30", 30.0),
    "log_payloads": ("all", "all"),
    "log_sample_rate": ("0.25", 0.25),
    "log_sink": ("kafka://broker:9092/payloads", "kafka://broker:9092/payloads"),
    "log_queue_size": ("100", 100),
    "log_roll_seconds": ("5", 5.0),
    "log_roll_mb": ("1.5", 1.5),
    "tls_cert": ("/tls/tls.crt", "/tls/tls.crt"),
    "tls_key": ("/tls/tls.key", "/tls/tls.key"),
    "tls_client_ca": ("/tls/ca.crt", "/tls/ca.crt"),
    "tls_reload_seconds": ("2", 2.0),
    "auth": ("api_key", "api_key"),
    "auth_api_keys_file": ("/keys/api-keys", "/keys/api-keys"),
    "auth_jwks": ("https://issuer.test/jwks.json", "https://issuer.test/jwks.json"),
    "auth_jwt_issuer": ("https://issuer.test", "https://issuer.test"),
    "auth_jwt_audience": ("models", "models"),
    "auth_metrics": ("true", True),
    "auth_reload_seconds": ("5", 5.0),
}
# Settings that only go with others (a key without its certificate is refused): those set too.
_TLS = {"MODEL_SERVER_TLS_CERT": "/c", "MODEL_SERVER_TLS_KEY": "/k"}
_JWT = {
    "MODEL_SERVER_AUTH": "jwt",
    "MODEL_SERVER_AUTH_JWKS": "/j",
    "MODEL_SERVER_AUTH_JWT_ISSUER": "i",
    "MODEL_SERVER_AUTH_JWT_AUDIENCE": "a",
}
COMPANIONS = {
    "tls_cert": _TLS,
    "tls_key": _TLS,
    "tls_client_ca": _TLS,
    "auth": {"MODEL_SERVER_AUTH_API_KEYS_FILE": "/f"},
    "auth_api_keys_file": {"MODEL_SERVER_AUTH": "api_key"},
    "auth_jwks": _JWT,
    "auth_jwt_issuer": _JWT,
    "auth_jwt_audience": _JWT,
    "log_payloads": {"MODEL_SERVER_LOG_SINK": "/var/log/payloads"},  # payloads logged need a sink
}


def test_every_setting_has_a_test_value():
    assert set(OTHER_VALUES) == {f.name for f in dataclasses.fields(ServerSettings)}


@pytest.mark.parametrize("name", sorted(OTHER_VALUES))
def test_each_variable_sets_its_setting(name):
    raw, expected = OTHER_VALUES[name]
    companions = COMPANIONS.get(name, {})
    settings = ServerSettings.from_args([], environ={**companions, env_name(name): raw})
    assert getattr(settings, name) == expected
    set_too = {f.name for f in dataclasses.fields(ServerSettings) if env_name(f.name) in companions}
    others = {f.name for f in dataclasses.fields(ServerSettings)} - {name} - set_too
    defaults = ServerSettings.from_args([], environ={})
    assert all(getattr(settings, other) == getattr(defaults, other) for other in others)


def test_flag_wins_over_variable_and_variable_over_default():
    environ = {"MODEL_SERVER_MAX_BATCH_SIZE": "64"}
    assert ServerSettings.from_args(["--max_batch_size", "8"], environ=environ).max_batch_size == 8
    assert ServerSettings.from_args([], environ=environ).max_batch_size == 64
    assert ServerSettings.from_args([], environ={}).max_batch_size == 512


@pytest.mark.parametrize(
    "argv,environ,message",
    [
        ([], {"MODEL_SERVER_MAX_BATCH_SIZE": "many"}, "MODEL_SERVER_MAX_BATCH_SIZE='many': invalid literal"),
        ([], {"MODEL_SERVER_ACCESS_LOG": "maybe"}, "MODEL_SERVER_ACCESS_LOG='maybe': expected true or false"),
        ([], {"MODEL_SERVER_BACKEND": "gpu"}, "MODEL_SERVER_BACKEND='gpu': expected one of auto, sklearn, onnx"),
        (["--max_batch_size", "0"], {}, "--max_batch_size must be at least 1, got 0"),
        (["--max_batch_wait_ms", "-1"], {}, "--max_batch_wait_ms must be at least 0"),
        (["--tls_cert", "/c"], {}, "--tls_cert and --tls_key go together"),
        (["--tls_client_ca", "/ca"], {}, "--tls_client_ca (mutual TLS) needs --tls_cert and --tls_key"),
        (["--auth", "api_key"], {}, "--auth api_key needs --auth_api_keys_file"),
        (["--auth", "jwt", "--auth_jwks", "/j"], {}, "--auth jwt needs --auth_jwt_issuer, --auth_jwt_audience"),
        (["--auth_api_keys_file", "/f"], {}, "--auth_api_keys_file is given but --auth is not api_key"),
        (["--auth", "oauth"], {}, "argument --auth: invalid choice"),
        ([], {"MODEL_SERVER_WORKERS": "many"}, "MODEL_SERVER_WORKERS='many': expected a number of processes or auto"),
        (["--workers", "0"], {}, "--workers must be at least 1, got 0"),
        (["--timeout-keep-alive", "-5"], {}, "--timeout-keep-alive must be at least 0"),
        (
            ["--version_policy", "newest"],
            {},
            "--version_policy 'newest': expected latest, latest:N, all or specific:1,3",
        ),
    ],
)
def test_unusable_values_stop_with_a_message_naming_them(capsys, argv, environ, message):
    with pytest.raises(SystemExit) as exit_:
        ServerSettings.from_args(argv, environ=environ)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_management_token_from_a_file(tmp_path):
    token = tmp_path / "token"
    token.write_text("from-a-secret\n")
    assert ServerSettings.from_args(["--management_token_file", str(token)], environ={}).bearer_token == "from-a-secret"
    assert ServerSettings.from_args([], environ={"MODEL_SERVER_MANAGEMENT_TOKEN": "t"}).bearer_token == "t"


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--management_token_file", "/nonexistent/token"], "--management_token_file /nonexistent/token: No such file"),
        (["--management_token", "a", "--management_token_file", __file__], "not both"),
    ],
)
def test_management_token_mistakes(capsys, argv, message):
    with pytest.raises(SystemExit):
        ServerSettings.from_args(argv, environ={})
    assert message in capsys.readouterr().err


def test_repository_api_is_on_by_default_only_for_a_repository():
    assert not ServerSettings.from_args([], environ={}).repository_api_enabled
    assert ServerSettings.from_args(["--model_repository", "/m"], environ={}).repository_api_enabled
    assert not ServerSettings.from_args(
        ["--model_repository", "/m", "--repository_api", "false"], environ={}
    ).repository_api_enabled


SETTINGS_CLASSES = [
    "model_server.kserve.settings:ServerSettings",
    "model_server.edge.settings:EdgeSettings",
    "model_server.stream.settings:StreamSettings",
    "model_server.batch.settings:BatchSettings",
    "model_server.rollout.settings:RolloutSettings",
]


def settings_class(where: str):
    module_name, class_name = where.split(":")
    return getattr(importlib.import_module(module_name), class_name)


@pytest.mark.parametrize("where", SETTINGS_CLASSES)
def test_every_boolean_takes_the_bare_flag_and_a_value(where):
    cls = settings_class(where)
    required = {
        "model_server.stream.settings": ["--input_topic", "in", "--output_topic", "out"],
        "model_server.batch.settings": ["--input", "i", "--output", "o"],
        "model_server.rollout.settings": ["--model_dir", "/m", "--stable_model_dir", "/s", "--validate_only"],
    }.get(where.split(":")[0], [])
    booleans = [f for f in dataclasses.fields(cls) if is_boolean(f.metadata["cast"])]
    assert booleans
    for field in booleans:
        flag = flag_of(field)
        assert getattr(cls.from_args([*required, flag], environ={}), field.name) is True, flag
        if flag not in required:
            assert getattr(cls.from_args([*required, flag, "false"], environ={}), field.name) is False, flag


def test_every_flag_is_spelt_with_underscores_and_the_rollouts_old_dashes_still_work(capsys):
    for where in SETTINGS_CLASSES:
        for field in dataclasses.fields(settings_class(where)):
            assert flag_of(field) in (f"--{field.name}", "--event-loop", "--timeout-keep-alive"), where
    old = RolloutSettings.from_args(
        ["--model_dir", "/m", "--stable-model-dir", "/s", "--validate-only", "--max-regression", "0.5"], environ={}
    )
    assert (old.stable_model_dir, old.validate_only, old.max_regression) == ("/s", True, 0.5)
    RolloutSettings.build_parser("rollout", "").print_help()
    help_text = capsys.readouterr().out
    assert "--stable_model_dir" in help_text and "--stable-model-dir" not in help_text


def test_settings_are_frozen():
    settings = ModelSettings.from_args([], environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.model_dir = "/elsewhere"


def test_server_accepts_and_ignores_kserves_other_flags():
    settings = parse_settings(["--predictor_host", "x:80", "--model_name", "iris", "--http_port", "1234"])
    assert settings.model_name == "iris" and settings.http_port == 1234


def test_help_lists_every_setting_with_its_variable():
    result = subprocess.run(
        [sys.executable, "-m", "model_server", "--help"], capture_output=True, text=True, cwd=REPO, check=True
    )
    text = " ".join(result.stdout.split())
    for field in dataclasses.fields(ServerSettings):
        assert env_name(field.name) in text, field.name
    assert "--predictor_host" not in text  # accepted for KServe's sake, meaningless here


@pytest.mark.parametrize("where", SETTINGS_CLASSES)
def test_every_front_end_s_help_renders_each_flag_with_its_variable(where):
    """argparse formats help texts with %: a stray one prints the flag's internals instead of its help."""
    cls = settings_class(where)
    text = " ".join(cls.build_parser("prog", "description").format_help().split())
    assert "option_strings" not in text
    unused = getattr(importlib.import_module(where.split(":")[0]), "UNUSED", ())
    for field in dataclasses.fields(cls):
        if field.name not in unused:  # the rollout hides what it has no use for
            assert env_name(field.name) in text, field.name


@pytest.mark.parametrize(
    "where, required",
    [
        ("model_server.edge.settings:EdgeSettings", []),
        ("model_server.batch.settings:BatchSettings", ["--input", "i", "--output", "o"]),
        ("model_server.stream.settings:StreamSettings", ["--input_topic", "in", "--output_topic", "out"]),
    ],
)
def test_one_model_front_ends_refuse_a_repository_they_would_ignore(capsys, where, required):
    with pytest.raises(SystemExit) as exited:
        settings_class(where).from_args([*required, "--model_repository", "/models"], environ={})
    assert exited.value.code == 2 and "--model_repository" in capsys.readouterr().err


def test_kserve_tls_names_are_the_same_setting_as_ours():
    kserve_names = ["--ssl_certfile", "/k/cert", "--ssl_keyfile", "/k/key"]
    settings = ServerSettings.from_args(kserve_names, environ={})
    assert settings.tls_files == ("/k/cert", "/k/key")
    assert settings.https_port == 8443  # KServe's rule for its own settings on the default port
    ours = ServerSettings.from_args([*kserve_names, "--tls_cert", "/t/cert", "--tls_key", "/t/key"], environ={})
    assert (ours.tls_files, ours.https_port) == (("/t/cert", "/t/key"), 8080)
    # KServe serves TLS only with both of its files; so do we.
    assert ServerSettings.from_args(["--ssl_certfile", "/k/cert"], environ={}).tls_files == (None, None)


def test_workers_combine_with_the_repository_api_and_watch():
    """The supervisor loads and replaces the workers (kserve/reloader.py): nothing to refuse."""
    settings = ServerSettings.from_args(["--workers", "2", "--watch", "--repository_api"], environ={})
    assert (settings.workers, settings.watch, settings.repository_api_enabled) == (2, True, True)
