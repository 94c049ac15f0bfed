"""The stream consumer's Prometheus series (beside the core's: model_server_batch_size,
model_server_requests_total{protocol="kafka"})."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter("model_server_stream_messages_in_total", "Messages fetched from the input topic")
MESSAGES_OUT = Counter(
    "model_server_stream_messages_out_total",
    "Responses acknowledged by the broker on the output topic",
)
MESSAGES_REJECTED = Counter(
    "model_server_stream_messages_rejected_total",
    "Messages that could not be answered (sent to the error topic, or logged without one), by the "
    "HTTP status the same error gets from the server",
    ["code"],
)
LAG = Gauge(
    "model_server_stream_lag",
    "Messages of an assigned partition not yet answered and committed (end offset minus committed offset)",
    ["topic", "partition"],
    multiprocess_mode="livesum",  # with --workers: one partition, one live owner (the others say 0)
)
END_TO_END_SECONDS = Histogram(
    "model_server_stream_end_to_end_seconds",
    "From a request's record timestamp to its response's acknowledgement by the broker",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
