"""Payload events to files in a folder or an object store (pyarrow's file systems: local, S3 and
S3-compatible stores through the usual ``AWS_*`` variables, GCS): Parquet, or JSON Lines where
pyarrow is not installed (local folders only).

Events are held in memory and written as one file once the oldest is ``roll_seconds`` old or they
reach ``roll_bytes`` (their JSON size), so every file is complete when it appears. Files are named
by the time of their first event, under a ``date=YYYY-MM-DD`` folder, with the writing process's
id (each worker writes its own), so that a reader lists them by time and DuckDB or pyarrow reads
the folder as one partitioned data set:

    PREFIX/date=2026-12-04/payloads-20261204T014512.123456Z-4711-000001.parquet

Columns: id, model, version, protocol, started, ended (seconds since the epoch), latency_ms,
status, error, traceparent, and request and response as JSON text (their tensors differ from
model to model, so a fixed schema holds them as text).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import SettingsError
from ..core.payload_log import PayloadEvent, dumps

try:
    import pyarrow as pa
    import pyarrow.fs as pa_fs
    import pyarrow.parquet as pq
except ImportError:  # JSON Lines in a local folder
    pa = None

COLUMNS = ("id", "model", "version", "protocol", "started", "ended", "latency_ms", "status", "error", "traceparent")


def _schema():
    return pa.schema(
        [
            ("id", pa.string()),
            ("model", pa.string()),
            ("version", pa.string()),
            ("protocol", pa.string()),
            ("started", pa.float64()),
            ("ended", pa.float64()),
            ("latency_ms", pa.float64()),
            ("status", pa.int32()),
            ("error", pa.string()),
            ("traceparent", pa.string()),
            ("request", pa.string()),
            ("response", pa.string()),
        ]
    )


class FileSink:
    def __init__(self, filesystem, base: str, name: str, roll_seconds: float = 60.0, roll_bytes: float = 64e6):
        self.filesystem = filesystem  # a pyarrow FileSystem, or None: local JSON Lines
        self.base = base.rstrip("/")
        self.name = name
        self.roll_seconds = roll_seconds
        self.roll_bytes = roll_bytes
        self.format = "parquet" if filesystem is not None else "jsonl"
        self._rows: list[dict] = []
        self._bytes = 0
        self._opened = 0.0  # monotonic time of the oldest held event
        self._sequence = 0

    @classmethod
    def from_url(cls, url: str, roll_seconds: float = 60.0, roll_bytes: float = 64e6) -> FileSink:
        local = "://" not in url or url.startswith("file://")
        name = "file" if local else url.split("://", 1)[0].lower()
        if pa is None:
            if not local:
                raise SettingsError(f"--log_sink {url}: an object store needs pyarrow (pip install pyarrow)")
            path = url.removeprefix("file://")
            Path(path).mkdir(parents=True, exist_ok=True)
            return cls(None, path, name, roll_seconds, roll_bytes)
        try:
            filesystem, base = pa_fs.FileSystem.from_uri(url if "://" in url else os.path.abspath(url))
        except (pa.ArrowInvalid, ValueError, OSError) as exc:
            raise SettingsError(f"--log_sink {url}: {exc}") from None
        if local:
            filesystem.create_dir(base, recursive=True)
        return cls(filesystem, base, name, roll_seconds, roll_bytes)

    async def send(self, events: list[PayloadEvent]) -> None:
        rows = [_row(event) for event in events]
        size = sum(len(row["request"] or "") + len(row["response"] or "") + 200 for row in rows)
        pending = self._rows + rows
        opened = self._opened if self._rows else time.monotonic()
        if self._bytes + size >= self.roll_bytes or time.monotonic() - opened >= self.roll_seconds:
            await self._write(pending)  # raises with nothing held changed: a retry adds the batch once
            self._rows, self._bytes = [], 0
        else:
            self._rows, self._bytes, self._opened = pending, self._bytes + size, opened

    async def flush(self) -> None:
        """Write what is held once it is due (called when no events came for a while)."""
        if self._rows and time.monotonic() - self._opened >= self.roll_seconds:
            await self._write(self._rows)
            self._rows, self._bytes = [], 0

    async def close(self) -> None:
        if self._rows:
            await self._write(self._rows)
            self._rows, self._bytes = [], 0

    async def _write(self, rows: list[dict]) -> None:
        self._sequence += 1
        first = datetime.fromtimestamp(rows[0]["started"], UTC)
        path = (
            f"{self.base}/date={first:%Y-%m-%d}/"
            f"payloads-{first:%Y%m%dT%H%M%S.%f}Z-{os.getpid()}-{self._sequence:06d}.{self.format}"
        )
        await asyncio.to_thread(self._write_file, rows, path)

    def _write_file(self, rows: list[dict], path: str) -> None:
        if self.filesystem is None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            partial = _hidden(path)
            partial.write_bytes(b"".join(dumps(row) + b"\n" for row in rows))
            partial.rename(path)  # a reader never sees half a file
            return
        table = pa.Table.from_pylist(rows, schema=_schema())
        if self.name == "file":
            self.filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
        # An object store shows the object once the upload completes; a local file is renamed into place.
        target = str(_hidden(path)) if self.name == "file" else path
        with self.filesystem.open_output_stream(target) as stream:
            pq.write_table(table, stream, compression="zstd")
        if target != path:
            self.filesystem.move(target, path)


def _hidden(path: str) -> Path:
    """Where a local file is written before it is renamed into place: a dot file, which readers
    of the folder (pyarrow datasets, DuckDB globs) skip."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


def _row(event: PayloadEvent) -> dict:
    request, response = event.request_json(), event.response_json()
    row = {column: getattr(event, column, None) for column in COLUMNS}
    row["latency_ms"] = event.latency_seconds * 1000
    row["ended"] = event.ended
    row["request"] = None if request is None else dumps(request).decode()
    row["response"] = None if response is None else dumps(response).decode()
    return row
