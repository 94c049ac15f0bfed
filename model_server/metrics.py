"""Prometheus metrics of our own; KServe's (request_predict_seconds, ...) stay as they are.

Both are served by KServe's /metrics endpoint from the default registry.
"""

import functools

from prometheus_client import Counter, Histogram

BATCH_ROWS = Histogram(
    "model_server_batch_size",
    "Rows per estimator call (after micro-batching concurrent requests)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
REQUESTS = Counter(
    "model_server_requests_total",
    # One vocabulary for every protocol: the HTTP status of the outcome (a gRPC INVALID_ARGUMENT
    # counts as 400, as the same error over REST does), so one query covers all of them.
    "Inference requests answered, by protocol (v1, v2, grpc) and HTTP status code (gRPC: the code of the same error)",
    ["protocol", "code"],
)


@functools.cache
def requests_counter(protocol: str, code: str):
    """REQUESTS for one protocol and code; prometheus_client's labels() costs microseconds a call."""
    return REQUESTS.labels(protocol, code)
