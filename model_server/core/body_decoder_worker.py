"""The helper process of ``body_decoder.BodyDecoder``: reads (protocol, body, header length)
frames on stdin and answers each with the decoded request, or the error, on stdout.

    python -m model_server.core.body_decoder_worker   (started by BodyDecoder, never by hand)
"""

from __future__ import annotations

import pickle
import sys

import numpy as np

from .body_decoder import decode_body, read_frame, write_frame
from .codec import V1Request, V2Request
from .errors import InvalidInput, ModelFailure
from .memory import give_memory_back


def decode_in_helper(protocol: str, body: bytes, header_length: str | None) -> V1Request | V2Request:
    """In the helper: decode, and turn V1 rows of numbers into a matrix (cheap to send back)."""
    try:
        request = decode_body(protocol, body, header_length)
        if isinstance(request, V1Request) and isinstance(request.instances, list):
            request.instances = _as_matrix(request.instances)
        return request
    finally:
        give_memory_back()


def _as_matrix(instances: list):
    try:
        matrix = np.array(instances)
    except (ValueError, TypeError):
        return instances
    return matrix if matrix.ndim == 2 and matrix.dtype.kind in "iuf" else instances


def main() -> None:
    """The helper: read (protocol, body, header length) messages, answer decoded requests or errors."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            protocol, body, header_length = pickle.loads(read_frame(stdin))
        except EOFError:
            return
        try:
            answer = (True, decode_in_helper(protocol, body, header_length))
        except InvalidInput as exc:
            answer = (False, exc)
        except Exception as exc:  # anything else: the server answers 500 with its name
            answer = (False, ModelFailure(f"decoding failed: {type(exc).__name__}: {exc}"))
        write_frame(stdout, pickle.dumps(answer, pickle.HIGHEST_PROTOCOL))
        stdout.flush()


if __name__ == "__main__":
    main()
