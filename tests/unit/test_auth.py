"""core/auth.py without a server: the API keys file format, and what reloads keep or drop."""

import pytest

from model_server.core import auth
from model_server.core.errors import SettingsError, Unauthorized


def keys_file(tmp_path, text: str):
    path = tmp_path / "api-keys"
    path.write_text(text)
    return path


def test_a_key_names_its_client_and_others_are_refused(tmp_path):
    path = keys_file(tmp_path, f"{auth.hash_api_key('a-key')} alice  # the batch job\n\n{auth.hash_api_key('b')} bob\n")
    keys = auth.build("api_key", api_keys_file=str(path))
    assert keys.check({"authorization": "Bearer a-key"}) == "alice"
    assert keys.check({"x-api-key": "b"}) == "bob"
    for headers in ({}, {"x-api-key": "c"}, {"authorization": "Basic YTpi"}, {"authorization": "Bearer"}):
        with pytest.raises(Unauthorized) as refused:
            keys.check(headers)
        assert refused.value.challenge.startswith('Bearer realm="model-server"')


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "no keys in it"),
        ("# only a comment\n", "no keys in it"),
        ("a-plain-key alice\n", "line 1: expected '<sha256 hex of the key> <client name>'"),
        (f"{'0' * 64}\n", "line 1: expected"),
        (f"{'0' * 64} alice\n{'1' * 64} alice\n", "line 2: client 'alice' appears twice"),
    ],
)
def test_a_bad_keys_file_is_refused_at_start(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message):
        auth.build("api_key", api_keys_file=str(keys_file(tmp_path, text)))


def test_reload_takes_a_good_file_and_keeps_the_keys_over_a_bad_one(tmp_path):
    path = keys_file(tmp_path, f"{auth.hash_api_key('old')} alice\n")
    keys = auth.ApiKeys(str(path))
    path.write_text(f"{auth.hash_api_key('new')} alice\n")
    keys.reload()
    assert keys.check({"x-api-key": "new"}) == "alice"
    with pytest.raises(Unauthorized):
        keys.check({"x-api-key": "old"})  # replaced: revoked
    for broken in ("garbage\n", b"\xff\xfe"):
        path.write_bytes(broken if isinstance(broken, bytes) else broken.encode())
        keys.reload()
        assert keys.check({"x-api-key": "new"}) == "alice"
    path.unlink()
    keys.reload()
    assert keys.check({"x-api-key": "new"}) == "alice"


def test_jwks_problems_are_named_at_start(tmp_path):
    with pytest.raises(SettingsError, match="--auth_jwks /nonexistent"):
        auth.build("jwt", jwks="/nonexistent", issuer="i", audience="a")
    empty = tmp_path / "jwks.json"
    empty.write_text('{"keys": []}')
    with pytest.raises(SettingsError, match="--auth_jwks"):
        auth.build("jwt", jwks=str(empty), issuer="i", audience="a")
