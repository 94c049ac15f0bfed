"""``run(settings)``: a whole batch run. One reader walks this shard's files in order and hands
chunks to a pool of worker threads that score them and commit their parts; parts commit in any
order, and the manifest says which are done.

Threads, not processes: reading and writing Parquet, numpy and ONNX Runtime release the GIL, so
``--workers`` threads keep that many cores busy on one copy of the model, without pickling it or
the rows. BLAS is held to one thread per worker so that the cores are not oversubscribed and a
chunk's arithmetic is the same whatever the worker count (bit-identical outputs).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import InvalidInput, RowsRejected
from ..core.predictor import Predictor, quiet_sklearn
from .parts import MANIFEST_VERSION, OutputDirectory
from .progress import Progress
from .scoring import Scorer
from .settings import BatchSettings
from .sources import Chunk, InputFile, Reader, list_inputs
from .tensor_scoring import TensorScorer

logger = logging.getLogger("model_server.batch")


@dataclass
class Summary:
    rows_in: int
    rows_out: int
    rows_rejected: int
    rows_scored_now: int  # by this run (the rest were committed by an earlier, resumed one)
    seconds: float  # scoring: from the first chunk read to the last one committed
    load_seconds: float  # listing the input and loading the model
    output: str
    errors: str

    @property
    def rows_per_s(self) -> float:
        return self.rows_scored_now / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "rows_per_s": round(self.rows_per_s, 1)}


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, capped by a cgroup CPU quota (a
    Kubernetes CPU limit), at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def run(settings: BatchSettings) -> Summary:
    """Score ``settings.input`` into ``settings.output``; raises ``RowsRejected`` at the first refused
    row with ``on_error=fail``. Refused rows with ``skip`` are in the summary and the errors file."""
    from threadpoolctl import threadpool_limits

    start = time.monotonic()
    shard_index, shard_count = settings.shard()
    fs, files = list_inputs(settings.input, settings.input_format)
    own = [f for f in files if f.index % shard_count == shard_index]
    predictor = settings.load_predictor(settings.model_dir, settings.model_name)
    if settings.drift_report and getattr(predictor, "drift", None) is None:
        raise InvalidInput(
            f"--drift_report: {settings.model_dir} has no profile.json of named features "
            "(python -m model_server.profile writes one)"
        )
    scorer = scorer_for(predictor, settings)
    output = OutputDirectory(settings.output, settings.format, (shard_index, shard_count))
    output.open(_identity(settings, predictor, files), settings.overwrite, {f.index for f in own})
    workers = settings.workers or usable_cpus()
    loaded = time.monotonic()
    total = _known_rows(fs, own, settings.chunk_rows)
    progress = Progress(settings.progress, total, already=output.totals()["rows_in"])
    logger.info(
        "scoring %d of %d input files (shard %d of %d) with %d workers into %s",
        len(own),
        len(files),
        shard_index,
        shard_count,
        workers,
        settings.output,
    )
    scored_now = 0
    with threadpool_limits(limits=1), ThreadPoolExecutor(workers, "batch", initializer=quiet_sklearn) as pool:
        pending: set[Future] = set()
        stop = threading.Event()

        def score_and_commit(chunk: Chunk, features: list[str], first_row: int) -> int:
            if stop.is_set():
                return 0
            scored = scorer.score_columns(
                chunk.columns, features, chunk.n_rows, first_row, chunk.file.uri, chunk.refused
            )
            if scored.rejected and settings.on_error == "fail":
                stop.set()
                first = scored.rejected[0]
                where = f"row {first.row} of the input ({first.file})" + (
                    f", column '{first.column}'" if first.column else ""
                )
                raise RowsRejected(f"{where}: {first.reason} (--on_error fail)")
            output.commit(
                chunk.file.index, chunk.index, chunk.n_rows, scored.table, [r.to_dict() for r in scored.rejected]
            )
            progress.advance(chunk.n_rows, len(scored.rejected))
            return chunk.n_rows

        def collect(block: bool) -> None:
            nonlocal scored_now, pending
            done, pending = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
            for future in done:
                scored_now += future.result()  # a failed chunk stops the run here

        try:
            for file, first_row in _files_with_offsets(fs, files, own, output, settings.chunk_rows):
                reader = Reader(fs, file, settings.chunk_rows)
                features = scorer.feature_columns(reader.column_names(), file.uri)
                columns = list(dict.fromkeys([*settings.keep_columns, *features]))
                committed = output.committed(file.index)
                n_rows = n_chunks = 0
                for chunk in reader.chunks(columns):
                    n_rows += chunk.n_rows
                    n_chunks += 1
                    if chunk.index in committed:
                        continue
                    while len(pending) >= 2 * workers:
                        collect(block=True)
                    pending.add(pool.submit(score_and_commit, chunk, features, first_row + chunk.first_row))
                    collect(block=False)
                output.file_read(file.index, n_rows, n_chunks)
            while pending:
                collect(block=True)
        except BaseException:
            stop.set()
            for future in pending:
                future.cancel()
            raise
    errors = settings.errors_path()
    output.finish({f.index for f in own}, errors)
    if settings.drift_report:
        report = {**predictor.drift.report(), "input": settings.input, "model_version": predictor.version}
        Path(settings.drift_report).write_text(json.dumps(report, indent=2) + "\n")
    progress.close()
    totals = output.totals()
    summary = Summary(
        **totals,
        rows_scored_now=scored_now,
        seconds=time.monotonic() - loaded,
        load_seconds=loaded - start,
        output=settings.output,
        errors=errors,
    )
    return summary


def _files_with_offsets(fs, files: list[InputFile], own: list[InputFile], output: OutputDirectory, chunk_rows: int):
    """(file, its first row in the whole input) for each of this shard's files still to read. The
    rows of files before it come from the manifest, from reading it (this shard's), or from counting
    it (another shard's)."""
    own_indexes = {f.index for f in own}
    last_own = max(own_indexes, default=-1)
    offset = 0
    for file in files:
        if file.index > last_own:
            return
        entry = output.file_entry(file.index)
        if file.index not in own_indexes:
            rows = output.manifest["counted"].get(str(file.index))
            if rows is None:
                rows = Reader(fs, file, chunk_rows).count_rows()
                output.counted(file.index, rows)
            offset += rows
            continue
        if not output.file_complete(file.index):
            yield file, offset
        offset += entry["rows"]


def _known_rows(fs, own: list[InputFile], chunk_rows: int) -> int | None:
    """Rows of this shard's input when their count is cheap (Parquet footers), else None."""
    if not all(f.format == "parquet" for f in own):
        return None
    return sum(Reader(fs, f, chunk_rows).count_rows() for f in own)


def _identity(settings: BatchSettings, predictor: Predictor, files: list[InputFile]) -> dict:
    """What makes two runs the same run: a resumed run must be one."""
    return {
        "version": MANIFEST_VERSION,
        "model_sha256": predictor.artifact.sha256,
        "backend": settings.backend,
        "input": settings.input,
        "files": [[f.uri, f.size, f.mtime_ns] for f in files],
        "outputs": list(settings.outputs),
        "keep_columns": list(settings.keep_columns),
        "positional": settings.positional,
        "format": settings.format,
        "chunk_rows": settings.chunk_rows,
        "shard": list(settings.shard()),
    }


def scorer_for(predictor, settings):
    """A generic ONNX graph's columns are its tensors (``tensor_scoring.py``); an estimator's its features."""
    from ..core.onnx.tensor_predictor import OnnxTensorPredictor

    kind = TensorScorer if isinstance(predictor, OnnxTensorPredictor) else Scorer
    return kind(predictor, settings.outputs, settings.keep_columns, settings.positional)
