"""TLS for every listener: the certificate files (``--tls_cert``, ``--tls_key``, ``--tls_client_ca``),
read, checked and swapped in when they change, without a restart and without failing a handshake.

cert-manager renews a certificate by rewriting the Secret; the kubelet swaps the mounted files
atomically (a ``..data`` symlink), but the certificate and the key are two files read one after
the other, so a read may pair a new certificate with the old key. Each poll (every
``reload_seconds``) reads the files; when their bytes changed, a *new* ``SSLContext`` is built
from them (OpenSSL checks that key and certificate match) and the files are read again: only if
nothing moved meanwhile does the new context replace the current one. A half-written pair is
refused, logged, and tried again at the next poll; the old certificate serves meanwhile.

Why not ``load_cert_chain`` again on the live context (KServe's SSLCertRefresher): on a key that
does not match, OpenSSL has already dropped the old key, and every handshake after fails.
Here the listening context's ``sni_callback`` (OpenSSL calls it on every ClientHello, with or
without a server name) hands each new connection the current context; connections already open
keep theirs. gRPC reads the same checked bytes through its certificate-configuration fetcher
(``kserve/grpc.py``).

TLS 1.2 and 1.3 only; for TLS 1.2 only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305
(Mozilla's "intermediate" list); TLS 1.3's suites are all modern. With ``--tls_client_ca``,
a client certificate signed by that CA is required (mutual TLS): without one the handshake fails.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import SettingsError

logger = logging.getLogger(__name__)

TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)


@dataclass(frozen=True)
class Pem:
    """The bytes of the three files, as read together."""

    cert: bytes
    key: bytes
    client_ca: bytes | None


class ServerTls:
    def __init__(self, cert: str, key: str, client_ca: str | None = None, alpn: tuple[str, ...] = ("http/1.1",)):
        self.paths = (Path(cert), Path(key), Path(client_ca) if client_ca else None)
        self.alpn = alpn
        try:
            self.pem, self.current = self._load()
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"--tls_cert {cert} / --tls_key {key}: {_reason(exc)}") from None
        if self.pem is None:
            raise SettingsError(f"--tls_cert {cert} / --tls_key {key}: the files changed while being read")
        self.generation = 0  # counts the swaps: gRPC's fetcher looks at it
        # The context the listener is given; each handshake is handed the current one.
        self.listening = self._context()
        self.listening.sni_callback = self._use_current

    @property
    def mutual(self) -> bool:
        return self.paths[2] is not None

    def _use_current(self, connection, server_name, context) -> None:
        current = self.current
        if connection.context is not current:
            connection.context = current

    def _read(self) -> Pem:
        cert, key, client_ca = self.paths
        return Pem(cert.read_bytes(), key.read_bytes(), client_ca.read_bytes() if client_ca else None)

    def _context(self) -> ssl.SSLContext:
        cert, key, client_ca = self.paths
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(TLS12_CIPHERS)
        context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
        context.set_alpn_protocols(list(self.alpn))
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=client_ca)
        return context

    def _load(self) -> tuple[Pem | None, ssl.SSLContext]:
        """The files' bytes and a context built from them; bytes None if they moved meanwhile."""
        before = self._read()
        context = self._context()
        return (before if self._read() == before else None), context

    def reload(self) -> bool:
        """Swap in the files' certificate if they changed and are a valid pair; True if swapped."""
        try:
            if self._read() == self.pem:
                return False
            pem, context = self._load()
        except (OSError, ssl.SSLError) as exc:
            logger.error("TLS certificate not reloaded (the one loaded before serves): %s", _reason(exc))
            return False
        if pem is None:
            return False  # written while read: the next poll tries again
        self.pem, self.current = pem, context
        self.generation += 1
        logger.info("TLS certificate reloaded from %s", self.paths[0])
        return True

    async def watch(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.reload()


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return str(exc)
