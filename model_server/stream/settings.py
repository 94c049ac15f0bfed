"""The stream consumer's settings: the model's and the payload log's (``PayloadLogSettings``), plus
Kafka and the ops port."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.errors import SettingsError
from ..core.settings import PayloadLogSettings, env_name, optional, setting
from ..kserve.workers import workers_count  # the server's --workers parsing (plain Python, no KServe)

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# The TLS flags are named as the server's (--tls_cert, --tls_key; --tls_ca here verifies the
# brokers, as --tls_client_ca there verifies clients). The earlier names still work, unlisted.
OLD_NAMES = {"ssl_cafile": "tls_ca", "ssl_certfile": "tls_cert", "ssl_keyfile": "tls_key"}


@dataclass(frozen=True)
class StreamSettings(PayloadLogSettings):
    bootstrap_servers: str = setting("localhost:9092", "Kafka brokers to start from, HOST:PORT[,HOST:PORT...].")
    input_topic: str = setting("", "Topic of inference requests (required).")
    output_topic: str = setting("", "Topic the responses go to, keyed as their request (required).")
    error_topic: str | None = setting(
        None,
        "Topic for messages that cannot be answered (not JSON, not fitting the model, a failing model), "
        "with the original bytes and the reason in headers. Unset: such messages are logged and counted.",
        optional(str),
    )
    group_id: str = setting("model-server", "Consumer group: replicas with the same group share the partitions.")
    max_in_flight: int = setting(
        2048,
        "Most messages fetched but not yet answered and acknowledged; fetching pauses at this bound.",
        int,
        minimum=1,
    )
    auto_offset_reset: str = setting(
        "earliest",
        "Where a group without a committed offset starts: earliest (every message kept on the topic) or latest.",
        choices=("earliest", "latest"),
    )
    commit_interval_ms: float = setting(
        100.0,
        "How often answered offsets are committed; a crash re-answers at most this much (duplicates, same id).",
        float,
        minimum=1,
    )
    linger_ms: float = setting(
        2.0, "How long the producer waits to fill a batch of responses before sending it.", float, minimum=0
    )
    fetch_max_wait_ms: int = setting(
        100,
        "Longest a fetch waits on the broker for new messages (Kafka's default: 500). Brokers that answer "
        "only when it expires (tansu) add up to this much latency at low rates.",
        int,
        minimum=0,
    )
    session_timeout_ms: int = setting(
        10000,
        "Consumer group session: a replica silent this long (killed) loses its partitions to the others.",
        int,
        minimum=1000,
    )
    client_id: str = setting("model-server-stream", "Kafka client id (broker logs and quotas).")
    security_protocol: str = setting("PLAINTEXT", "Kafka security protocol.", choices=SECURITY_PROTOCOLS)
    sasl_mechanism: str | None = setting(
        None, f"SASL mechanism ({', '.join(SASL_MECHANISMS)}) for SASL_* protocols.", optional(str)
    )
    sasl_username: str | None = setting(None, "SASL user name.", optional(str))
    sasl_password: str | None = setting(
        None, "SASL password (prefer the environment variable, from a Secret).", optional(str)
    )
    tls_ca: str | None = setting(None, "CA bundle to verify the brokers (SSL, SASL_SSL).", optional(str))
    tls_cert: str | None = setting(None, "Client certificate (PEM) for mutual TLS with the brokers.", optional(str))
    tls_key: str | None = setting(None, "Private key of --tls_cert.", optional(str))
    workers: int = setting(
        1,
        "Consumer processes, or auto (the container's CPU limit, from its cgroup's cpu.max). More than 1: "
        "the model loads once, then the workers are forked and share its memory; each is a member of "
        "the consumer group (the partitions are split between them), a supervisor replaces a worker "
        "that dies, /metrics sums them all.",
        workers_count,
        minimum=1,
    )
    http_port: int = setting(8080, "Ops HTTP port: /healthz, /readyz, /metrics.", int, minimum=0)
    log_level: str = setting("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    def check(self) -> None:
        super().check()
        if self.model_repository:
            raise SettingsError(
                "--model_repository: a stream consumer answers for one model (--model_dir), run one per model"
            )
        for flag in ("input_topic", "output_topic"):
            if not getattr(self, flag):
                raise SettingsError(f"--{flag} is required (or MODEL_SERVER_{flag.upper()})")
        if self.input_topic in (self.output_topic, self.error_topic):
            raise SettingsError("--input_topic must differ from --output_topic and --error_topic")
        if self.security_protocol.startswith("SASL"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise SettingsError(
                    f"--sasl_mechanism must be one of {', '.join(SASL_MECHANISMS)} with {self.security_protocol}"
                )
            if not (self.sasl_username and self.sasl_password):
                raise SettingsError(f"--sasl_username and --sasl_password are required with {self.security_protocol}")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("--tls_cert and --tls_key go together")

    @classmethod
    def build_parser(cls, prog: str, description: str, parents: Sequence[argparse.ArgumentParser] = ()):
        parser = super().build_parser(prog, description, parents)
        for old, new in OLD_NAMES.items():
            parser.add_argument(
                f"--{old}", dest=new, type=optional(str), default=argparse.SUPPRESS, help=argparse.SUPPRESS
            )
        return parser

    @classmethod
    def from_args(cls, argv=None, environ: Mapping[str, str] = os.environ, **kwargs):
        """The old variables (MODEL_SERVER_SSL_CAFILE, ...) stand for the new ones they are not beside."""
        renamed = {env_name(new): environ[env_name(old)] for old, new in OLD_NAMES.items() if env_name(old) in environ}
        return super().from_args(argv, environ={**renamed, **environ}, **kwargs)
