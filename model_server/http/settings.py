"""The settings of every HTTP listener (the KServe front end's and the edge runtime's): one
definition, each front end choosing its own defaults where they differ (``redefault``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.settings import ModelSettings, boolean, setting

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
class HttpSettings(ModelSettings):
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

    def predictor_options(self) -> dict:
        return {**super().predictor_options(), "max_request_rows": self.max_request_rows}
