"""Who may call the data plane: the one credential check every transport makes (``--auth``).

- ``none``: anyone who reaches the port (KServe's behaviour, the default for compatibility).
- ``api_key``: a key per client, sent as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. The
  server holds only their SHA-256 digests, in a file (a mounted Secret), one client a line::

      # sha256 hex of the key      client name
      9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  billing-batch

  A key is compared with every digest in constant time (``hmac.compare_digest``), so the time
  taken tells nothing of which or how much of a guess was right; removing a client's line revokes
  it. The file is read again when it changes.
- ``jwt``: ``Authorization: Bearer TOKEN``, a JWT signed by a key of a JWKS (a file or an https
  URL, read again every ``reload_seconds``), its issuer, audience and expiry checked, by PyJWT.
  Only asymmetric algorithms: a shared secret in the server would let it mint tokens.

Transports pass the request's headers (gRPC: its metadata) as a mapping of lower-case names;
``check`` answers the client's name or raises ``Unauthorized`` (401 / UNAUTHENTICATED, with the
``WWW-Authenticate`` challenge of RFC 6750 in ``Unauthorized.challenge``). Which routes stay open (health,
readiness, optionally /metrics) is each transport's table; the decision is made here.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from .errors import SettingsError, Unauthorized

logger = logging.getLogger(__name__)

MODES = ("none", "api_key", "jwt")
REALM = "model-server"
# Asymmetric only: with HS256 the verifying server holds a key that can also sign.
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_DIGEST = re.compile(r"[0-9a-f]{64}")


class Authenticator:
    """``--auth none``: every caller is let in."""

    mode = "none"

    def check(self, headers: Mapping[str, str]) -> str:
        return "anonymous"

    def reload(self) -> None:
        """Read the credentials again if their source changed (blocking: call it off the event loop)."""

    async def watch(self, interval: float) -> None:
        """Reload every ``interval`` seconds, forever (a task each front end runs on its loop)."""
        if type(self).reload is Authenticator.reload:
            return
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload)
            except Exception:  # keep serving with what was loaded; say why
                logger.exception("%s credentials not reloaded", self.mode)


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _challenge(error: str | None = None) -> str:
    return f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")


def unauthorized(message: str, error: str | None = None) -> Unauthorized:
    return Unauthorized(message, _challenge(error))


class ApiKeys(Authenticator):
    mode = "api_key"

    def __init__(self, path: str):
        self.path = Path(path)
        self._source: bytes | None = None
        self.clients: list[tuple[bytes, str]] = []
        self.reload()
        if not self.clients:
            raise SettingsError(f"--auth_api_keys_file {path}: no keys in it")

    def reload(self) -> None:
        try:
            source = self.path.read_bytes()
        except OSError as exc:
            if self._source is None:
                raise SettingsError(f"--auth_api_keys_file {self.path}: {exc.strerror}") from None
            logger.error("API keys file %s unreadable (%s): the keys read before stay", self.path, exc.strerror)
            return
        if source == self._source:
            return
        try:
            clients = parse_api_keys(source.decode())
        except (SettingsError, UnicodeDecodeError) as exc:
            if self._source is None:
                raise SettingsError(f"--auth_api_keys_file {self.path}: {exc}") from None
            logger.error("API keys file %s not reloaded: %s", self.path, exc)
            return
        if self._source is not None:
            logger.info("API keys reloaded from %s: %d clients", self.path, len(clients))
        self._source, self.clients = source, clients

    def check(self, headers: Mapping[str, str]) -> str:
        key = headers.get("x-api-key") or _bearer(headers)
        if not key:
            raise unauthorized("this server needs an API key: Authorization: Bearer KEY, or X-API-Key: KEY")
        digest = hashlib.sha256(key.strip().encode()).hexdigest().encode()
        client = None
        for known, name in self.clients:  # every digest compared: the time does not depend on which matches
            if hmac.compare_digest(digest, known) and client is None:
                client = name
        if client is None:
            raise unauthorized("the API key is not valid", "invalid_token")
        return client


def parse_api_keys(text: str) -> list[tuple[bytes, str]]:
    """``SHA256HEX CLIENT`` a line; blank lines and ``#`` comments are skipped."""
    clients, names = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        digest, _, name = line.partition(" ")
        digest, name = digest.lower(), name.strip()
        if not _DIGEST.fullmatch(digest) or not name:
            raise SettingsError(f"line {number}: expected '<sha256 hex of the key> <client name>'")
        if name in names:
            raise SettingsError(f"line {number}: client {name!r} appears twice (one key per client)")
        names.add(name)
        clients.append((digest.encode(), name))
    return clients


def hash_api_key(key: str) -> str:
    """The line of the keys file for ``key`` is ``hash_api_key(key) + " " + client``."""
    return hashlib.sha256(key.encode()).hexdigest()


class JwtBearer(Authenticator):
    mode = "jwt"

    def __init__(self, jwks: str, issuer: str, audience: str, leeway_seconds: float = 30):
        try:
            import cryptography  # noqa: F401  (PyJWT's RSA / EC / EdDSA keys)
            import jwt
        except ImportError:  # the edge image leaves them out: API keys and mutual TLS need neither
            raise SettingsError("--auth jwt needs PyJWT with cryptography: pip install 'pyjwt[crypto]'") from None

        self._jwt = jwt
        self.jwks, self.issuer, self.audience, self.leeway = jwks, issuer, audience, leeway_seconds
        self._source: bytes | None = None
        self.keys: dict[str | None, object] = {}
        try:
            self.reload()
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            raise SettingsError(f"--auth_jwks {jwks}: {exc}") from None

    def _read(self) -> bytes:
        if re.match(r"https?://", self.jwks):
            with urllib.request.urlopen(self.jwks, timeout=10) as response:
                return response.read()
        return Path(self.jwks).read_bytes()

    def reload(self) -> None:
        source = self._read()
        if source == self._source:
            return
        key_set = self._jwt.PyJWKSet.from_dict(json.loads(source))
        keys = {key.key_id: key for key in key_set.keys if key.public_key_use in (None, "sig")}
        if not keys:
            raise ValueError("no signing keys in the JWKS")
        if self._source is not None:
            logger.info("JWKS reloaded from %s: %d keys", self.jwks, len(keys))
        self._source, self.keys = source, keys

    def check(self, headers: Mapping[str, str]) -> str:
        token = _bearer(headers)
        if not token:
            raise unauthorized("this server needs a bearer token: Authorization: Bearer JWT")
        jwt = self._jwt
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keys.get(kid) if kid is not None or len(self.keys) != 1 else next(iter(self.keys.values()))
            if key is None:
                raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS")
            claims = jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name] if key.algorithm_name in JWT_ALGORITHMS else list(JWT_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise unauthorized(f"the bearer token is not valid: {exc}", "invalid_token") from None
        return str(claims.get("sub") or claims.get("client_id") or "token")


def build(
    mode: str,
    api_keys_file: str | None = None,
    jwks: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> Authenticator:
    """The authenticator ``--auth`` names, its credentials read now (a SettingsError says what is wrong)."""
    if mode == "none":
        return Authenticator()
    if mode == "api_key":
        if not api_keys_file:
            raise SettingsError("--auth api_key needs --auth_api_keys_file")
        return ApiKeys(api_keys_file)
    if mode == "jwt":
        missing = [
            flag
            for flag, value in (("--auth_jwks", jwks), ("--auth_jwt_issuer", issuer), ("--auth_jwt_audience", audience))
            if not value
        ]
        if missing:
            raise SettingsError(f"--auth jwt needs {', '.join(missing)}")
        return JwtBearer(jwks, issuer, audience)
    raise SettingsError(f"--auth must be one of {', '.join(MODES)}, got {mode!r}")
