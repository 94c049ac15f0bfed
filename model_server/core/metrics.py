"""Prometheus metrics of our own; KServe's (request_predict_seconds, ...) stay as they are.

Every per-model series carries the model's name and version, so a canary's or a hot reload's
versions can be told apart. Served by KServe's /metrics endpoint from the default registry.
"""

import functools

from prometheus_client import Counter, Gauge, Histogram

BATCH_ROWS = Histogram(
    "model_server_batch_size",
    "Rows per estimator call (after micro-batching concurrent requests)",
    ["model", "version"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
PREDICT_SECONDS = Histogram(
    "model_server_predict_seconds",
    "Seconds from a request's rows entering the batcher to its predictions (batching wait included)",
    ["model", "version"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LOAD_FAILURES = Counter(
    "model_server_model_load_failures_total",
    "Model versions that failed to load or to pass their check, and were refused",
    ["model"],
)
REQUESTS = Counter(
    "model_server_requests_total",
    # One vocabulary for every protocol: the HTTP status of the outcome (a gRPC INVALID_ARGUMENT
    # counts as 400, as the same error over REST does), so one query covers all of them.
    "Inference requests answered, by protocol (v1, v2, grpc, mlflow, ...) and HTTP status code "
    "(gRPC: the code of the same error)",
    ["protocol", "code", "model", "version"],
)


@functools.cache
def requests_counter(protocol: str, code: str, model: str = "", version: str = ""):
    """REQUESTS for one protocol, code, model and version (empty for a model that does not exist);
    prometheus_client's labels() costs microseconds a call."""
    return REQUESTS.labels(protocol, code, model, version)


PAYLOAD_LOG_EVENTS = Counter(
    "model_server_payload_log_events_total",
    "Payload log events by sink and outcome: sent, dropped (the queue was full: requests never wait "
    "for the sink) or failed (the sink refused them through every retry)",
    ["sink", "outcome"],
)
PAYLOAD_LOG_RETRIES = Counter(
    "model_server_payload_log_retries_total",
    "Payload log deliveries retried after the sink failed (backing off up to a few seconds)",
    ["sink"],
)


@functools.cache
def payload_log_counter(sink: str, outcome: str):
    return PAYLOAD_LOG_EVENTS.labels(sink, outcome)


@functools.cache
def payload_log_retries(sink: str):
    return PAYLOAD_LOG_RETRIES.labels(sink)


FEATURE_DRIFT = Gauge(
    "model_server_feature_drift",
    "Population stability index of a feature over the drift window against the model's profile.json",
    ["model", "version", "feature", "method"],
)
PREDICTION_DRIFT = Gauge(
    "model_server_prediction_drift",
    "Population stability index of an output over the drift window against the model's profile.json",
    ["model", "version", "output", "method"],
)
FEATURE_MISSING = Gauge(
    "model_server_feature_missing_ratio",
    "Share of the drift window's rows whose feature is missing (NaN, null)",
    ["model", "version", "feature"],
)
FEATURE_OUT_OF_RANGE = Counter(
    "model_server_feature_out_of_range_total",
    "Values of a numeric feature below the profile's minimum or above its maximum",
    ["model", "version", "feature"],
)
