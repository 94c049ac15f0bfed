"""Large request bodies are decoded in a helper process, not on the event loop.

Parsing a 12 MB V1 body is one C call of about half a second (orjson holds the GIL throughout), so
in a thread it would still stop every other request for that long; and its million Python floats
are what grows a server's memory by hundreds of megabytes. The helper process parses the body and
hands back numpy arrays (V1 rows become one float64 matrix when they are all numbers), which cost
a few milliseconds to receive and check. The helper starts with the first large body, so a server
that never sees one pays nothing for it; it gives the memory it used back to the system after
each body, and if it dies, the next large body starts another.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import struct
import subprocess
import sys
import threading

from .codec import V1Request, V2Request, decode_v1, decode_v2_rest, loads_json
from .codec.v2_rest import json_length
from .errors import ModelFailure

logger = logging.getLogger(__name__)
FRAME = struct.Struct("<Q")  # the length of each pickled message on the pipe


class BodyDecoder:
    """Decodes V1 and V2 REST bodies: small ones at once, larger than ``threshold`` bytes of JSON
    in the helper (``body_decoder_worker``, talking over its stdin and stdout). Not
    multiprocessing: its spawned children import the parent's ``__main__``, the whole server.
    The exchange runs in a worker thread: starting the helper (vfork) and the pipe I/O keep the
    event loop free."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self._helper: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one body at a time through the pipe

    async def decode(self, protocol: str, body: bytes, header_length: str | None) -> V1Request | V2Request:
        json_bytes = len(body)
        if protocol == "v2" and header_length is not None:
            json_bytes = json_length(header_length, len(body))
        if json_bytes <= self.threshold:  # binary tensors cost nothing to parse: only JSON counts
            return decode_body(protocol, body, header_length)
        ok, value = await asyncio.to_thread(self._exchange, (protocol, body, header_length))
        if ok:
            return value
        raise value

    def _exchange(self, message: tuple) -> tuple[bool, object]:
        with self._lock:
            helper = self._running_helper()
            try:
                write_frame(helper.stdin, pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
                helper.stdin.flush()
                return pickle.loads(read_frame(helper.stdout))
            except (OSError, EOFError):  # it died (killed for memory, say)
                self._helper = None
                raise ModelFailure(
                    "the helper process that decodes large bodies stopped; it restarts with the next"
                ) from None

    def _running_helper(self) -> subprocess.Popen:
        if self._helper is None or self._helper.poll() is not None:
            command = [sys.executable, "-m", "model_server.core.body_decoder_worker"]
            self._helper = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            logger.info(
                "started helper process %d to decode JSON bodies over %d bytes", self._helper.pid, self.threshold
            )
        return self._helper

    def close(self) -> None:
        if self._helper is not None and self._helper.poll() is None:
            self._helper.stdin.close()  # it exits at end of input


def read_frame(stream) -> bytes:
    header = stream.read(FRAME.size)
    if len(header) < FRAME.size:
        raise EOFError
    (size,) = FRAME.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        raise EOFError
    return payload


def write_frame(stream, payload: bytes) -> None:
    stream.write(FRAME.pack(len(payload)))
    stream.write(payload)


def decode_body(protocol: str, body: bytes, header_length: str | None) -> V1Request | V2Request:
    if protocol == "v1":
        return decode_v1(loads_json(body))
    return decode_v2_rest(body, header_length)
