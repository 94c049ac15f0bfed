"""One table from exception type to HTTP status and gRPC code, for both transports.

A client mistake is a 4xx / INVALID_ARGUMENT, a missing model 404 / NOT_FOUND, and only a real
failure is 500 / INTERNAL. (KServe's gRPC interceptor maps its InferenceError to INVALID_ARGUMENT
and costs a Python wrapper per call; our gRPC server uses this table instead.)
"""

from grpc import StatusCode
from kserve.errors import (
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)

STATUS = {
    InvalidInput: (400, StatusCode.INVALID_ARGUMENT),
    ModelNotFound: (404, StatusCode.NOT_FOUND),
    ModelNotReady: (503, StatusCode.UNAVAILABLE),
    ServerNotReady: (503, StatusCode.UNAVAILABLE),
    ServerNotLive: (503, StatusCode.UNAVAILABLE),
    NotImplementedError: (501, StatusCode.UNIMPLEMENTED),
    UnsupportedProtocol: (501, StatusCode.UNIMPLEMENTED),
}
INTERNAL = (500, StatusCode.INTERNAL)


def status_of(exc: BaseException) -> tuple[int, StatusCode]:
    for error_type, status in STATUS.items():
        if isinstance(exc, error_type):
            return status
    return INTERNAL
