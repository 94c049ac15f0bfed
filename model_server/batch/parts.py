"""The output directory: one part file per scored chunk, committed atomically, and a manifest
that lists what is committed, so that a rerun with the same arguments resumes where a killed run
stopped: no chunk missing, none written twice.

    OUT/part-FFFFF-CCCCCC.<format>       rows of chunk C of input file F (names sort in input order)
    OUT/_errors/part-FFFFF-CCCCCC.jsonl  the chunk's refused rows
    OUT/_manifest.json                   this run's identity and committed chunks
                                         (_manifest-K-of-N.json for shard K of N)

A part (then its errors) is written first, the manifest after: a chunk is committed when the
manifest names it. Locally each file is written to a temporary name and renamed (atomic); an
object store's PUT is atomic already, so there the file is written in place. A part left behind
by a killed run and not in the manifest is written again by the rerun, byte for byte the same,
and leftovers are removed when the shard finishes. Names starting with ``_`` or ``.`` are skipped
by pyarrow, pandas, Dask and Spark when they read the directory as one dataset.
"""

from __future__ import annotations

import contextlib
import re
import threading
import uuid
from collections.abc import Callable

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq

from ..core.errors import InvalidInput
from .sources import filesystem

MANIFEST_VERSION = 1
SUFFIX = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
PART = re.compile(r"^part-(\d{5})-(\d{6})\.")


def part_name(file_index: int, chunk: int, fmt: str) -> str:
    return f"part-{file_index:05d}-{chunk:06d}.{SUFFIX[fmt]}"


class OutputDirectory:
    def __init__(self, uri: str, fmt: str, shard: tuple[int, int]):
        self.uri, self.format, self.shard = uri.rstrip("/"), fmt, shard
        self.fs, self.root = filesystem(uri)
        self.root = self.root.rstrip("/")
        self.local = isinstance(self.fs, pa_fs.LocalFileSystem)
        index, count = shard
        self.manifest_name = "_manifest.json" if count == 1 else f"_manifest-{index}-of-{count}.json"
        # Temporary files carry the shard: shards writing into one directory at once must only ever
        # clean up their own.
        self.temporary_prefix = f".tmp-{index}-of-{count}-"
        self._lock = threading.Lock()
        self.manifest: dict = {}

    # -- opening ---------------------------------------------------------------------------------

    def open(self, identity: dict, overwrite: bool, own_files: set[int]) -> dict:
        """Start or resume: the manifest of this shard's earlier run if it is the same run."""
        try:
            self.fs.create_dir(self.root, recursive=True)
            self.fs.create_dir(f"{self.root}/_errors", recursive=True)
            earlier = self._read(self.manifest_name)
        except OSError as exc:
            raise InvalidInput(f"output {self.uri}: {exc}") from None
        if earlier is not None and not overwrite and earlier.get("identity") != identity:
            differs = sorted(
                key
                for key in set(identity) | set(earlier.get("identity", {}))
                if identity.get(key) != earlier.get("identity", {}).get(key)
            )
            raise InvalidInput(
                f"output {self.uri} holds another run (its {', '.join(differs)} differ): use another --output, "
                "or --overwrite to replace it"
            )
        if earlier is None or overwrite:
            self.manifest = {"version": MANIFEST_VERSION, "identity": identity, "files": {}, "counted": {}}
            if overwrite:
                self._remove(lambda name: True, own_files)
            self._write_manifest()
        else:
            self.manifest = earlier
        return self.manifest

    # -- state -------------------------------------------------------------------------------------

    def file_entry(self, file_index: int) -> dict:
        return self.manifest["files"].setdefault(str(file_index), {"chunks": {}})

    def committed(self, file_index: int) -> set[int]:
        return {int(c) for c in self.file_entry(file_index)["chunks"]}

    def file_complete(self, file_index: int) -> bool:
        entry = self.file_entry(file_index)
        return "n_chunks" in entry and len(entry["chunks"]) == entry["n_chunks"]

    def totals(self) -> dict[str, int]:
        totals = {"rows_in": 0, "rows_out": 0, "rows_rejected": 0}
        for entry in self.manifest["files"].values():
            for chunk in entry["chunks"].values():
                totals["rows_in"] += chunk["rows"]
                totals["rows_out"] += chunk["out"]
                totals["rows_rejected"] += chunk["rejected"]
        return totals

    # -- committing --------------------------------------------------------------------------------

    def commit(self, file_index: int, chunk: int, n_rows: int, table: pa.Table, rejected: list[dict]) -> None:
        """Write the chunk's part and errors, then name them in the manifest."""
        name = part_name(file_index, chunk, self.format)
        if table.num_rows:
            self._write_file(name, lambda stream: write_table(table, stream, self.format))
        errors = None
        if rejected:
            errors = f"_errors/{part_name(file_index, chunk, 'jsonl')}"
            self._write_file(errors, lambda stream: stream.write(b"".join(orjson.dumps(r) + b"\n" for r in rejected)))
        record = {
            "rows": n_rows,
            "out": table.num_rows,
            "rejected": len(rejected),
            "part": name if table.num_rows else None,
            "errors": errors,
        }
        with self._lock:
            self.file_entry(file_index)["chunks"][str(chunk)] = record
            self._write_manifest()

    def file_read(self, file_index: int, n_rows: int, n_chunks: int) -> None:
        """The file has been read to its end: its size is known."""
        with self._lock:
            entry = self.file_entry(file_index)
            entry["rows"], entry["n_chunks"] = n_rows, n_chunks
            self._write_manifest()

    def counted(self, file_index: int, n_rows: int) -> None:
        with self._lock:
            self.manifest["counted"][str(file_index)] = n_rows

    def finish(self, own_files: set[int], errors_uri: str) -> None:
        """The shard is done: its errors file from the errors parts, in input order, and leftovers of
        killed runs removed."""
        errors_fs, errors_path = filesystem(errors_uri)
        parts = []
        for file_index in sorted(own_files):
            chunks = self.file_entry(file_index)["chunks"]
            parts += [chunks[c]["errors"] for c in sorted(chunks, key=int) if chunks[c]["errors"]]

        def write(stream):
            for part in parts:
                with self.fs.open_input_stream(f"{self.root}/{part}") as source:
                    stream.write(source.read())

        _write_atomically(
            errors_fs, errors_path, write, isinstance(errors_fs, pa_fs.LocalFileSystem), self.temporary_prefix
        )
        listed = {
            name
            for i in own_files
            for chunk in self.file_entry(i)["chunks"].values()
            for name in (chunk["part"], chunk["errors"])
            if name
        }

        def leftover(name: str) -> bool:
            match = PART.match(name.rsplit("/", 1)[-1])
            return (match is not None and int(match.group(1)) in own_files and name not in listed) or self._temporary(
                name
            )

        self._remove(leftover, own_files)
        with self._lock:
            self.manifest["complete"] = True
            self._write_manifest()

    # -- files -------------------------------------------------------------------------------------

    def _write_manifest(self) -> None:
        document = orjson.dumps(self.manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        self._write_file(self.manifest_name, lambda stream: stream.write(document))

    def _read(self, name: str) -> dict | None:
        path = f"{self.root}/{name}"
        if self.fs.get_file_info(path).type == pa_fs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(path) as stream:
            try:
                return orjson.loads(stream.read())
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"output {self.uri}: {name} is not valid JSON ({exc}): remove it") from None

    def _write_file(self, name: str, write: Callable) -> None:
        _write_atomically(self.fs, f"{self.root}/{name}", write, self.local, self.temporary_prefix)

    def _temporary(self, name: str) -> bool:
        return name.rsplit("/", 1)[-1].startswith(self.temporary_prefix)

    def _remove(self, which: Callable[[str], bool], own_files: set[int]) -> None:
        """Remove this shard's files for which ``which(name relative to the root)`` holds."""
        selector = pa_fs.FileSelector(self.root, recursive=True)
        for info in self.fs.get_file_info(selector):
            if not info.is_file:
                continue
            name = info.path[len(self.root) + 1 :]
            match = PART.match(name.rsplit("/", 1)[-1])
            mine = name == self.manifest_name or (match and int(match.group(1)) in own_files) or self._temporary(name)
            if mine and which(name):
                self.fs.delete_file(info.path)


def _write_atomically(fs: pa_fs.FileSystem, path: str, write: Callable, local: bool, prefix: str) -> None:
    if not local:
        with fs.open_output_stream(path) as stream:
            write(stream)
        return
    directory, _, name = path.rpartition("/")
    temporary = f"{directory}/{prefix}{name}-{uuid.uuid4().hex[:8]}"
    try:
        with fs.open_output_stream(temporary) as stream:
            write(stream)
        fs.move(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(temporary)
        raise


def write_table(table: pa.Table, stream, fmt: str) -> None:
    if fmt == "parquet":
        pq.write_table(table, stream)
    elif fmt == "csv":
        pa_csv.write_csv(table, stream)
    else:
        stream.write(b"".join(orjson.dumps(row) + b"\n" for row in table.to_pylist()))
