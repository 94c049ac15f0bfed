"""http/tls.py without a server: a renewed pair is swapped in, a mismatched or broken one is not."""

import shutil
import ssl

import pytest

from model_server.core.errors import SettingsError
from model_server.http.tls import ServerTls
from tests.support.certificates import Authority


@pytest.fixture
def files(tmp_path):
    ca = Authority(tmp_path / "ca")
    first, second = ca.issue("first"), ca.issue("second")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    return cert, key, first, second


def test_a_renewed_pair_is_swapped_in_and_a_half_written_one_is_not(files):
    cert, key, first, second = files
    tls = ServerTls(str(cert), str(key))
    assert tls.listening.minimum_version is ssl.TLSVersion.TLSv1_2
    assert not tls.reload()  # nothing changed
    shutil.copy(second.cert, cert)  # the new certificate with the old key: refused
    assert not tls.reload()
    assert (tls.generation, tls.pem.cert) == (0, first.cert.read_bytes())
    shutil.copy(second.key, key)
    old_context = tls.current
    assert tls.reload()
    assert (tls.generation, tls.pem.cert) == (1, second.cert.read_bytes())
    assert tls.current is not old_context and tls.listening.sni_callback is not None
    key.write_text("not a key")
    assert not tls.reload() and tls.generation == 1
    key.unlink()
    assert not tls.reload() and tls.generation == 1


def test_unusable_files_stop_the_start_naming_them(files, tmp_path):
    _, key, _, second = files
    with pytest.raises(SettingsError, match="No such file"):
        ServerTls(str(tmp_path / "missing.crt"), str(key))
    with pytest.raises(SettingsError, match=r"KEY_VALUES_MISMATCH|key values mismatch"):
        ServerTls(str(second.cert), str(key))
