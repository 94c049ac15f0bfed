"""The HTTP connection handler for every route: uvicorn's httptools protocol, one write per response."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol, writing each response to the socket once.

    Uvicorn writes the status line and headers, then the body, each with its own send() syscall;
    for a small inference response the two syscalls are a large share of the event loop's time.
    Writes are gathered until the end of the loop iteration and sent together (the gain is in
    benchmarks/README.md).
    """

    def connection_made(self, transport) -> None:
        super().connection_made(_CoalescingTransport(transport, self.loop))


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
