"""The input: which files (a file, a directory, a glob; local or in an object store), which of them
are this shard's, and each file read as a stream of fixed-size chunks.

Every file is read in record batches, never whole, so memory does not grow with the file. Chunk
``k`` of a file is always its rows ``[k * chunk_rows, (k + 1) * chunk_rows)``, whatever the
worker count or the run: that is what makes parts resumable and outputs bit-identical.

File systems are pyarrow's (``pyarrow.fs``): local, S3 (and S3-compatible stores: the usual
``AWS_*`` variables, ``AWS_ENDPOINT_URL`` included), GCS. Chosen over fsspec/s3fs because the
Parquet and CSV readers stream from them natively, and S3 support ships inside pyarrow (s3fs
would bring aiobotocore and botocore, larger than pyarrow's S3 library).
"""

from __future__ import annotations

import csv
import fnmatch
import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

from ..core.errors import InvalidInput

SUFFIXES = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
COMPRESSIONS = (".gz", ".bz2", ".zst", ".lz4")
GLOB_CHARACTERS = "*?["
JSONL_BLOCK_BYTES = 1 << 22


@dataclass(frozen=True)
class InputFile:
    index: int  # position in the sorted list of every input file: names the output parts
    uri: str  # as errors and logs name it
    path: str  # inside the file system
    format: str
    size: int
    mtime_ns: int | None


def filesystem(uri: str) -> tuple[pa_fs.FileSystem, str]:
    """The file system of a local path or URI, and the path inside it."""
    if "://" not in uri:
        import os

        uri = os.path.abspath(uri)
    try:
        return pa_fs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, ValueError, OSError) as exc:
        raise InvalidInput(f"{uri}: {exc}") from None


def list_inputs(spec: str, input_format: str = "auto") -> tuple[pa_fs.FileSystem, list[InputFile]]:
    """Every input file of ``spec``, sorted by path: the file, the directory's files (recursively,
    without hidden and ``_``-prefixed ones), or the glob's matches."""
    glob = next((i for i, c in enumerate(spec) if c in GLOB_CHARACTERS), None)
    base = spec if glob is None else spec[: spec.rfind("/", 0, glob) + 1] or "."
    fs, base_path = filesystem(base)
    prefix = _uri_prefix(spec, base, base_path)
    try:
        info = fs.get_file_info(base_path)
        if glob is None and info.type == pa_fs.FileType.File:
            infos = [info]
        elif info.type == pa_fs.FileType.NotFound:
            raise InvalidInput(f"input {spec}: no such file or directory")
        else:
            infos = [i for i in fs.get_file_info(pa_fs.FileSelector(base_path, recursive=True)) if i.is_file]
    except OSError as exc:
        raise InvalidInput(f"input {spec}: {exc}") from None
    if glob is not None:
        pattern = base_path.rstrip("/") + "/" + spec[len(base) :]
        infos = [i for i in infos if fnmatch.fnmatchcase(i.path, pattern)]
    elif len(infos) > 1 or info.type == pa_fs.FileType.Directory:
        infos = [i for i in infos if not _hidden(i.path, base_path) and _format_of(i.path, "auto")]
    files = []
    for info in sorted(infos, key=lambda i: i.path):
        fmt = _format_of(info.path, input_format)
        if fmt is None:
            raise InvalidInput(
                f"{prefix + info.path}: unknown format; name files .parquet, .csv or .jsonl, or pass --input_format"
            )
        files.append(InputFile(len(files), prefix + info.path, info.path, fmt, info.size, info.mtime_ns))
    if not files:
        raise InvalidInput(f"input {spec}: no Parquet, CSV or JSON Lines files there")
    return fs, files


def _uri_prefix(spec: str, base: str, base_path: str) -> str:
    if "://" in spec:
        return spec.split("://", 1)[0] + "://"
    return ""


def _hidden(path: str, base: str) -> bool:
    relative = path[len(base) :].strip("/")
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def _format_of(path: str, input_format: str) -> str | None:
    if input_format != "auto":
        return input_format
    name = path.lower()
    for compression in COMPRESSIONS:
        name = name.removesuffix(compression)
    return next((fmt for suffix, fmt in SUFFIXES.items() if name.endswith(suffix)), None)


def is_compressed(path: str) -> bool:
    return path.lower().endswith(COMPRESSIONS)


# -- reading ----------------------------------------------------------------------------------


@dataclass
class Chunk:
    """Rows of one file: ``columns`` (name -> pyarrow or numpy array), plus rows refused while
    reading (a JSON line that does not parse), by position in the chunk."""

    file: InputFile
    index: int  # chunk number in the file
    first_row: int  # of the file
    n_rows: int
    columns: dict[str, object]
    refused: dict[int, tuple[str | None, str]]


class Reader:
    """Reads one file's chunks; ``columns_of`` says which columns exist, before any row is read."""

    def __init__(self, fs: pa_fs.FileSystem, file: InputFile, chunk_rows: int):
        self.fs, self.file, self.chunk_rows = fs, file, chunk_rows

    def unreadable(self, exc: BaseException) -> InvalidInput:
        return InvalidInput(f"{self.file.uri}: cannot read it as {self.file.format}: {exc}".replace("\n", " "))

    def column_names(self) -> list[str]:
        try:
            if self.file.format == "parquet":
                return list(self._parquet().schema_arrow.names)
            if self.file.format == "csv":
                return self._csv_header()
            first = next(self._json_lines(), None)
            value = orjson.loads(first) if first else {}
            return list(value) if isinstance(value, dict) else []
        except (OSError, pa.ArrowException, orjson.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
            raise self.unreadable(exc) from None

    def chunks(self, columns: list[str]) -> Iterator[Chunk]:
        """The file's chunks with ``columns`` (CSV columns as text: numbers are parsed while
        scoring, so that a bad value refuses its row, not the file)."""
        try:
            if self.file.format == "jsonl":
                yield from self._jsonl_chunks(columns)
                return
            batches = self._parquet_batches(columns) if self.file.format == "parquet" else self._csv_batches(columns)
            for index, table in enumerate(_rechunk(batches, self.chunk_rows)):
                chunk_columns = {name: table.column(name) for name in columns}
                yield Chunk(self.file, index, index * self.chunk_rows, table.num_rows, chunk_columns, {})
        except (OSError, pa.ArrowException, csv.Error, UnicodeDecodeError) as exc:
            raise self.unreadable(exc) from None

    def count_rows(self) -> int:
        """The file's rows, without scoring them (for another shard's file)."""
        try:
            if self.file.format == "parquet":
                return self._parquet().metadata.num_rows
            if self.file.format == "csv":
                header = self._csv_header()
                return sum(b.num_rows for b in self._csv_batches(header[:1]))
            return sum(1 for _ in self._json_lines())
        except (OSError, pa.ArrowException, csv.Error) as exc:
            raise self.unreadable(exc) from None

    # Parquet: only the needed columns, one record batch at a time.
    def _parquet(self) -> pq.ParquetFile:
        return pq.ParquetFile(self.fs.open_input_file(self.file.path))

    def _parquet_batches(self, columns):
        # One reader per row group: a single iter_batches over a whole file keeps allocating as it
        # goes (pyarrow 26: +300 MB over 10M rows), one per row group stays flat.
        parquet = self._parquet()
        for group in range(parquet.metadata.num_row_groups):
            yield from parquet.iter_batches(batch_size=self.chunk_rows, columns=columns, row_groups=[group])

    # CSV: pyarrow's streaming reader; every needed column as text.
    def _stream(self):
        compression = "detect" if is_compressed(self.file.path) else None
        return self.fs.open_input_stream(self.file.path, compression=compression)

    def _csv_header(self) -> list[str]:
        with self._stream() as stream:
            line = io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8", newline="").readline()
        return next(csv.reader([line]), [])

    def _csv_batches(self, columns):
        convert = pa_csv.ConvertOptions(
            column_types={name: pa.string() for name in columns}, include_columns=columns, strings_can_be_null=True
        )
        yield from pa_csv.open_csv(self._stream(), convert_options=convert)

    # JSON Lines: one object per line, parsed line by line, so that a bad line refuses one row.
    def _json_lines(self) -> Iterator[bytes]:
        with self._stream() as stream:
            rest = b""
            while block := stream.read(JSONL_BLOCK_BYTES):
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                yield from (line for line in lines if line.strip())
            if rest.strip():
                yield rest

    def _jsonl_chunks(self, columns: list[str]) -> Iterator[Chunk]:
        pending: list[bytes] = []
        index = 0
        for line in self._json_lines():
            pending.append(line)
            if len(pending) == self.chunk_rows:
                yield self._json_chunk(index, pending, columns)
                pending, index = [], index + 1
        if pending:
            yield self._json_chunk(index, pending, columns)

    def _json_chunk(self, index: int, lines: list[bytes], columns: list[str]) -> Chunk:
        first_row = index * self.chunk_rows
        values = {name: [None] * len(lines) for name in columns}
        refused = {}
        for i, line in enumerate(lines):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                refused[i] = (None, f"instance {first_row + i}: not valid JSON: {exc}")
                continue
            if not isinstance(record, dict):
                refused[i] = (None, f"instance {first_row + i}: expected an object keyed by column name")
                continue
            missing = [name for name in columns if name not in record]
            if missing:
                refused[i] = (missing[0], f"instance {first_row + i}: missing features {missing}")
                continue
            for name in columns:
                values[name][i] = record[name]
        return Chunk(self.file, index, first_row, len(lines), {n: _json_column(v) for n, v in values.items()}, refused)


def _json_column(values: list) -> np.ndarray:
    """Numbers as a float64 array in one C-level step; anything else as Python objects, checked
    value by value."""
    try:
        array = np.array(values)
    except (ValueError, TypeError):
        array = None
    if array is not None and array.ndim == 1 and array.dtype.kind in "iuf":
        return array.astype(np.float64, copy=False)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _rechunk(batches, rows: int) -> Iterator[pa.Table]:
    """Record batches of any size as tables of exactly ``rows`` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        while count >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(pending)
