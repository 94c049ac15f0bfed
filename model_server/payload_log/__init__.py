"""The payload log's sinks: where ``core/payload_log.py``'s queue drains to. Not core: they need
transport libraries (httpx, aiokafka, pyarrow), imported only by the sink a ``--log_sink`` names.

    http(s)://...               http_sink.CloudEventSink: KServe logger's CloudEvents, binary mode
    kafka://host:port/topic     kafka_sink.KafkaSink: one record per event, keyed by request id
    s3://bucket/prefix, a path  file_sink.FileSink: Parquet files (JSON Lines without pyarrow)

Front ends call ``payload_logger(settings)`` and give the result to their ``DataPlane``.
"""

from __future__ import annotations

from ..core.errors import SettingsError
from ..core.payload_log import PayloadLogger, Sink


def sink_for(url: str, settings) -> Sink:
    """The sink ``url`` names (SettingsError for one that cannot be used)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme in ("http", "https"):
        from .http_sink import CloudEventSink

        return CloudEventSink(url, settings.model_name, mode=settings.log_payloads)
    if scheme == "kafka":
        from .kafka_sink import KafkaSink

        return KafkaSink.from_url(url)
    if scheme in ("file", "s3", "gs", "gcs"):
        from .file_sink import FileSink

        return FileSink.from_url(url, roll_seconds=settings.log_roll_seconds, roll_bytes=settings.log_roll_mb * 1e6)
    raise SettingsError(f"--log_sink {url}: expected http(s)://, kafka://, s3://, file:// or a folder")


def payload_logger(settings) -> PayloadLogger | None:
    """The payload logger ``settings`` (a ``PayloadLogSettings``) ask for, None when off."""
    if settings.log_payloads == "off":
        return None
    sink = sink_for(settings.log_sink, settings)
    return PayloadLogger(
        sink, mode=settings.log_payloads, sample_rate=settings.log_sample_rate, queue_size=settings.log_queue_size
    )
