"""One table from exception type to HTTP status and gRPC code.

KServe's own handlers map its error types for the routes it serves; ours (the inference routes)
use this table, so a client mistake is a 4xx / INVALID_ARGUMENT and only a real failure is 500.
"""

from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

STATUS = {
    InvalidInput: (400, "INVALID_ARGUMENT"),
    ModelNotFound: (404, "NOT_FOUND"),
    ModelNotReady: (503, "UNAVAILABLE"),
}
INTERNAL = (500, "INTERNAL")


def status_of(exc: BaseException) -> tuple[int, str]:
    for error_type, status in STATUS.items():
        if isinstance(exc, error_type):
            return status
    return INTERNAL
