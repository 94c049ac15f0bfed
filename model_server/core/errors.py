"""Our exception types and the one table that maps each to an HTTP status, a gRPC code and an exit code.

Raise the type; never pick a status in model or protocol code. A client mistake is 4xx /
INVALID_ARGUMENT, a missing model 404 / NOT_FOUND, and only a real failure is 500 / INTERNAL
(KServe's gRPC interceptor maps every InferenceError to INVALID_ARGUMENT). gRPC codes are named
here, not imported: this module is part of the core, which never imports grpc.
"""

from __future__ import annotations

from typing import NamedTuple


class ModelServerError(Exception):
    """Base of our errors; the message is what the client or operator reads."""


class InvalidInput(ModelServerError):
    """The request is malformed or does not fit the model: the client's to fix."""


class RequestTooLarge(ModelServerError):
    """The request is over a configured size limit."""


class UnsupportedMediaType(ModelServerError):
    """A body in a content type (or charset) the route does not take."""


class ModelNotFound(ModelServerError):
    """No such model (or model version) is served."""


class ModelNotReady(ModelServerError):
    """The model exists but cannot answer now (not loaded yet, unloaded, or shutting down)."""


class Unauthorized(ModelServerError):
    """A request without a valid credential (``core/auth.py``), or a management request without the
    management token. ``challenge``: the ``WWW-Authenticate`` value REST answers with."""

    def __init__(self, message: str, challenge: str = 'Bearer realm="model-server"'):
        super().__init__(message)
        self.challenge = challenge


class Disabled(ModelServerError):
    """A route that exists but is switched off in this server's settings; the message says how to enable it."""


class ArtifactError(ModelServerError):
    """The model directory cannot be served; the message says why, in one line."""


class ModelFailure(ModelServerError):
    """The model misbehaved (say, answered a different number of rows than it was sent): a 500."""


class SettingsError(ModelServerError):
    """A flag or MODEL_SERVER_* environment variable has a value that cannot be used."""


class RowsRejected(InvalidInput):
    """Batch scoring refused input rows (each named in the errors file): the run's exit code is 2."""


class Status(NamedTuple):
    http: int
    grpc: str  # a grpc.StatusCode name
    exit_code: int  # for command-line front ends that stop on this error


STATUS: dict[type[BaseException], Status] = {
    InvalidInput: Status(400, "INVALID_ARGUMENT", 1),
    RowsRejected: Status(400, "INVALID_ARGUMENT", 2),
    RequestTooLarge: Status(413, "RESOURCE_EXHAUSTED", 1),
    UnsupportedMediaType: Status(415, "INVALID_ARGUMENT", 1),
    ModelNotFound: Status(404, "NOT_FOUND", 1),
    ModelNotReady: Status(503, "UNAVAILABLE", 1),
    Unauthorized: Status(401, "UNAUTHENTICATED", 1),
    Disabled: Status(404, "UNIMPLEMENTED", 1),
    # A model that cannot be loaded: a refused load (repository API) or exit 1 at start.
    ArtifactError: Status(400, "FAILED_PRECONDITION", 1),
    SettingsError: Status(400, "INVALID_ARGUMENT", 2),  # 2, as argparse exits on a bad flag
    NotImplementedError: Status(501, "UNIMPLEMENTED", 1),
}
INTERNAL = Status(500, "INTERNAL", 1)


def alias(foreign: type[BaseException], ours: type[BaseException]) -> None:
    """Map another library's exception type (KServe's own InvalidInput, say) like one of ours."""
    STATUS[foreign] = STATUS[ours]


def status_of(exc: BaseException) -> Status:
    for error_type in type(exc).__mro__:
        status = STATUS.get(error_type)
        if status is not None:
            return status
    return INTERNAL


def describe(exc: BaseException) -> str:
    """What the client is told: a client mistake as it is, a failure with its type (an
    EOFError or a KeyError says little without it)."""
    if status_of(exc) is INTERNAL:
        return f"{type(exc).__name__}: {exc}"
    return str(exc)
