"""The control channel between the supervisor and each forked worker (``--workers`` above 1 with
the repository API or ``--watch``): one Unix socket pair per worker, made before its fork, with
one JSON message per line.

A worker asks (``SupervisorLink``, its data plane's repository ``manager``):
``{"id": 1, "op": "index" | "load" | "unload", "name": ...}``, answered
``{"id": 1, "ok": true, "result": ..., "retire": bool}`` or ``{"id": 1, "ok": false, "error":
{"type": "ArtifactError", "message": ...}}`` (raised again in the worker as the same type of
``core/errors.py``, so the client gets the status one process would give). It tells:
``{"op": "ready"}`` once its listeners serve, ``{"op": "retiring"}`` once it stopped accepting.
The supervisor tells it ``{"op": "retire"}``: a fresh worker with the new models took its place.
``"retire": true`` in an answer means the same for the worker that asked: it stops accepting
before it answers its client, so that no request after the answer reaches the old models.
The supervisor's side is ``kserve/reloader.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
from collections.abc import Callable

from ..core import errors

logger = logging.getLogger("model_server")

# An index of many models is one line: well past asyncio's 64 KiB default.
LINE_LIMIT = 64 * 1024 * 1024


def encode(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def describe_error(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "message": str(exc)}


def error_from(error: dict) -> Exception:
    """The exception a worker raises for the supervisor's ``error``: the same type of ours, so the
    same status (a bad model is 400, an unknown one 404); anything else is a 500."""
    kind = getattr(errors, error.get("type", ""), None)
    message = error.get("message", "")
    if isinstance(kind, type) and issubclass(kind, errors.ModelServerError) and kind is not errors.Unauthorized:
        return kind(message)
    return RuntimeError(f"the supervisor failed: {error.get('type')}: {message}")


class SupervisorLink:
    """A worker's end of its channel: the repository API forwarded to the supervisor, which owns
    the repository's truth, and the supervisor's word to retire (``on_retire``)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.on_retire: Callable[[], None] = lambda: None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None

    async def start(self, on_retire: Callable[[], None]) -> None:
        self.on_retire = on_retire
        reader, self._writer = await asyncio.open_unix_connection(sock=self.sock, limit=LINE_LIMIT)
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    def tell(self, message: dict) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode(message))

    async def repository_index(self) -> list[dict]:
        return (await self._ask({"op": "index"}))["result"]

    async def load(self, name: str) -> None:
        await self._ask({"op": "load", "name": name})

    async def unload(self, name: str) -> None:
        await self._ask({"op": "unload", "name": name})

    async def _ask(self, message: dict) -> dict:
        if self._writer is None or self._writer.is_closing():
            raise errors.ModelNotReady("this worker has lost its supervisor")
        number = next(self._ids)
        answer = self._pending[number] = asyncio.get_running_loop().create_future()
        self._writer.write(encode({**message, "id": number}))
        reply = await answer
        if not reply.get("ok"):
            raise error_from(reply.get("error", {}))
        return reply

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                message = json.loads(line)
                if message.get("op") == "retire":
                    self.on_retire()
                    continue
                if message.get("retire"):
                    self.on_retire()  # before the handler resumes: its answer says Connection: close
                answer = self._pending.pop(message.get("id"), None)
                if answer is not None and not answer.done():
                    answer.set_result(message)
        except (OSError, ValueError) as exc:
            logger.error("control channel to the supervisor failed: %s", exc)
        # The supervisor is gone (killed, or stopping): nothing can be loaded any more, and nothing
        # would replace this worker: it stops as a retired one does.
        for answer in self._pending.values():
            if not answer.done():
                answer.set_exception(errors.ModelNotReady("this worker has lost its supervisor"))
        self._pending.clear()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self.on_retire()
