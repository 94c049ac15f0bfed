"""The settings of every HTTP listener (the KServe front end's and the edge runtime's): one
definition, each front end choosing its own defaults where they differ (``redefault``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core import auth
from ..core.errors import SettingsError
from ..core.settings import PayloadLogSettings, boolean, optional, setting
from .tls import ServerTls

# The HTTP protocols a listener can speak (http/routes.py): KServe's V1 and V2 REST, and MLflow's
# scoring protocol with SageMaker's container contract (http/mlflow.py).


class Protocols(tuple):
    """Protocol names, shown in --help as they are written on the command line."""

    def __str__(self) -> str:
        return ",".join(self)


PROTOCOLS = Protocols(("v1", "v2", "mlflow"))


def protocol_list(value: str | tuple) -> Protocols:
    """``v1,v2,mlflow`` (any of them, in any order); an unknown name is an error."""
    if isinstance(value, str):
        names = tuple(name.strip().lower() for name in value.split(",") if name.strip())
    else:
        names = tuple(value)
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown or not names:
        raise ValueError(f"expected a comma-separated list of {', '.join(PROTOCOLS)}, got {value!r}")
    return Protocols(dict.fromkeys(names))


protocol_list.__name__ = "protocols"


@dataclass(frozen=True)
class HttpSettings(PayloadLogSettings):
    http_port: int = setting(
        8080, "HTTP port (V1 and V2 REST, MLflow's /invocations, health, metadata, /metrics).", int, minimum=0
    )
    protocols: tuple[str, ...] = setting(
        PROTOCOLS,
        "HTTP protocols served, comma-separated: v1 (/v1/models/...), v2 (/v2/models/...), mlflow "
        "(MLflow's scoring protocol and SageMaker's: /invocations, /ping, /health, /version, "
        "/execution-parameters). The routes of one left out answer 404 saying so; /v2/health/* "
        "always answer (probes use them).",
        protocol_list,
    )
    max_request_bytes: int = setting(
        16 * 1024 * 1024, "Largest accepted HTTP request body; larger ones get 413.", int, minimum=1
    )
    max_request_rows: int = setting(
        100_000,
        "Most rows one request may carry (every protocol); more get 413. With --max_request_bytes it "
        "bounds what one request can cost in memory.",
        int,
        minimum=1,
    )
    max_header_bytes: int = setting(
        64 * 1024,
        "Largest HTTP request head (request line and headers); larger ones get 431 and the connection is closed.",
        int,
        minimum=1024,
    )
    header_timeout_seconds: float = setting(
        10.0,
        "A connection must send a whole request head within this many seconds of opening, or of "
        "starting a request, else it is closed (slow or silent clients hold no connection for long).",
        float,
        minimum=0.1,
    )
    drain_seconds: float = setting(
        5.0,
        "On SIGTERM, readiness answers not-ready at once and the server keeps serving this long, so "
        "that Kubernetes endpoints, kube-proxy and ingresses stop sending traffic before the listener "
        "closes; they take a few seconds to see a terminating pod.",
        float,
        minimum=0,
    )
    grace_seconds: float = setting(
        20.0,
        "After the drain: how long requests in flight may take to finish before the server stops.",
        float,
        minimum=0,
    )
    access_log: bool = setting(
        False,
        "Log one line per HTTP request (uvicorn's access log; KServe logs it always). Off by default: at "
        "thousands of requests per second it costs more than the request itself.",
        boolean,
    )

    tls_cert: str | None = setting(
        None,
        "Serve TLS (HTTPS, and TLS on gRPC) with this PEM certificate (chain); TLS 1.2+ only. Read again "
        "when it changes (cert-manager renewals): new connections get the new one, none fails.",
        optional(str),
    )
    tls_key: str | None = setting(None, "PEM private key of --tls_cert.", optional(str))
    tls_client_ca: str | None = setting(
        None,
        "Mutual TLS: require a client certificate signed by a CA in this PEM file; a connection "
        "without one fails its handshake. Needs --tls_cert.",
        optional(str),
    )
    tls_reload_seconds: float = setting(
        10.0, "How often the TLS files are looked at for a renewed certificate.", float, minimum=0.1
    )
    auth: str = setting(
        "none",
        "Who may call the data plane. none: anyone who reaches the port. api_key: a key per client "
        "(Authorization: Bearer KEY or X-API-Key: KEY), checked against --auth_api_keys_file. jwt: a "
        "bearer JWT verified against --auth_jwks, its issuer, audience and expiry checked. Health and "
        "readiness stay open; a refused call gets 401 (WWW-Authenticate) or UNAUTHENTICATED.",
        choices=auth.MODES,
    )
    auth_api_keys_file: str | None = setting(
        None,
        "File of API keys, one client a line: the key's SHA-256 in hex, a space, the client's name "
        "(# comments). Read again when it changes: delete a line to revoke that client.",
        optional(str),
    )
    auth_jwks: str | None = setting(
        None, "JWKS (the issuer's public keys) for --auth jwt: a file or an http(s) URL.", optional(str)
    )
    auth_jwt_issuer: str | None = setting(None, "The iss claim a token must carry.", optional(str))
    auth_jwt_audience: str | None = setting(None, "The aud claim a token must carry.", optional(str))
    auth_metrics: bool = setting(
        False,
        "/metrics needs the same credential as the data plane (off: Prometheus scrapes it without one).",
        boolean,
    )
    auth_reload_seconds: float = setting(
        30.0, "How often the API keys file or the JWKS is read again.", float, minimum=0.1
    )

    def predictor_options(self) -> dict:
        return {**super().predictor_options(), "max_request_rows": self.max_request_rows}

    @property
    def tls_files(self) -> tuple[str | None, str | None]:
        """The certificate and key served: --tls_cert and --tls_key (the KServe front end adds KServe's names)."""
        return self.tls_cert, self.tls_key

    def check(self) -> None:
        super().check()
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("--tls_cert and --tls_key go together")
        if self.tls_client_ca and not self.tls_files[0]:
            raise SettingsError("--tls_client_ca (mutual TLS) needs --tls_cert and --tls_key")
        if self.auth == "api_key" and not self.auth_api_keys_file:
            raise SettingsError("--auth api_key needs --auth_api_keys_file")
        if self.auth == "jwt":
            missing = [
                f"--{name}" for name in ("auth_jwks", "auth_jwt_issuer", "auth_jwt_audience") if not getattr(self, name)
            ]
            if missing:
                raise SettingsError(f"--auth jwt needs {', '.join(missing)}")
        if self.auth_api_keys_file and self.auth != "api_key":
            raise SettingsError("--auth_api_keys_file is given but --auth is not api_key")
        if self.auth_jwks and self.auth != "jwt":
            raise SettingsError("--auth_jwks is given but --auth is not jwt")

    def server_tls(self, alpn: tuple[str, ...] = ("http/1.1",)) -> ServerTls | None:
        """The listener's TLS, its files read and checked now; None without --tls_cert."""
        cert, key = self.tls_files
        return ServerTls(cert, key, self.tls_client_ca, alpn) if cert else None

    def authenticator(self) -> auth.Authenticator:
        """The data plane's credential check (``core/auth.py``), its keys read now."""
        return auth.build(
            self.auth, self.auth_api_keys_file, self.auth_jwks, self.auth_jwt_issuer, self.auth_jwt_audience
        )
