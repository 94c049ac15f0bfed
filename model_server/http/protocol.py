"""The HTTP connection handler for every route: uvicorn's httptools protocol, with bounds.

- Each response goes to the socket in one write (``_CoalescingTransport``).
- A request head (request line and headers) is bounded in size and in time: uvicorn's httptools
  protocol buffers a head of any size for as long as the client takes to send it, so 20 clients
  sending 16 MB of unterminated headers cost 300 MB, and 300 silent connections stay open for
  good. Past ``max_header_bytes`` the answer is 431, past ``header_timeout`` 408; either closes
  the connection.
- While the server drains for shutdown (``ServingState.draining``), every response says
  ``Connection: close``: clients move to other pods instead of reusing a connection that is
  about to close.
"""

from __future__ import annotations

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..core.dataplane import ServingState


class ServerHttpProtocol(HttpToolsProtocol):
    max_header_bytes = 64 * 1024
    header_timeout = 10.0
    state = ServingState()

    @classmethod
    def configured(cls, max_header_bytes: int, header_timeout: float, state: ServingState) -> type:
        """This protocol with its bounds and the server's state (uvicorn builds it per connection)."""
        attributes = {"max_header_bytes": max_header_bytes, "header_timeout": header_timeout, "state": state}
        return type(cls.__name__, (cls,), attributes)

    def connection_made(self, transport) -> None:
        super().connection_made(_CoalescingTransport(transport, self.loop))
        self._head_bytes = 0
        self._head_pending = True
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def data_received(self, data: bytes) -> None:
        pending_before = self._head_pending
        if pending_before:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_pending:
            if not pending_before:  # a new request began in this chunk
                self._head_bytes = len(data)
            if self._head_bytes > self.max_header_bytes:
                self._reject(431, f"request head exceeds {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._head_pending:  # the next request on a kept-alive connection
            self._head_pending, self._head_bytes = True, 0
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_too_slow)

    def on_headers_complete(self) -> None:
        self._head_pending = False
        self._head_timer.cancel()
        super().on_headers_complete()
        if self.state.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def connection_lost(self, exc) -> None:
        self._head_timer.cancel()
        super().connection_lost(exc)

    def _head_too_slow(self) -> None:
        if self._head_pending:
            self._reject(408, f"no complete request head within {self.header_timeout:g} seconds")

    def _reject(self, status: int, message: str) -> None:
        if self.transport.is_closing():
            return
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        body = orjson.dumps({"error": message})
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


class _CoalescingTransport:
    """A transport whose write() sends, at the end of the loop iteration, all written so far (at
    once past MAX_PENDING bytes, so that a body streamed without yielding is not held whole)."""

    MAX_PENDING = 64 * 1024

    def __init__(self, transport, loop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > self.MAX_PENDING:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data, self._pending, self._pending_bytes = b"".join(self._pending), [], 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._flush()  # what was written before close() still goes out
        self._transport.close()

    def __getattr__(self, name):  # everything else is the real transport's
        return getattr(self._transport, name)
