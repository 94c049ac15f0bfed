"""``BatchSettings``: the flags of ``python -m model_server.batch``, each also a ``MODEL_SERVER_*``
variable (as every entry point's, see ``core/settings.py``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.codec import LABEL, PREDICT, PROBA
from ..core.errors import SettingsError
from ..core.settings import ModelSettings, boolean, optional, setting

FORMATS = ("parquet", "csv", "jsonl")
OUTPUTS = (PREDICT, LABEL, PROBA)


def names(value: str) -> tuple[str, ...]:
    """A comma-separated list (``id,region``) as a tuple; empty items dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())


names.__name__ = "list"


@dataclass(frozen=True)
class BatchSettings(ModelSettings):
    input: str | None = setting(
        None,
        "What to score: a Parquet, CSV or JSON Lines file, a directory of them or a glob "
        "(data/*.parquet); a local path or an s3:// / gs:// URI.",
        optional(str),
    )
    output: str | None = setting(
        None,
        "Output directory (local or s3:// / gs://): one part file per chunk, part-FFFFF-CCCCCC.<format>, "
        "in input order, and the _manifest that makes a rerun resume.",
        optional(str),
    )
    errors: str | None = setting(
        None,
        "JSON Lines file of the rejected rows (row, file, column, reason). Default: _errors.jsonl in the "
        "output directory (_errors-K-of-N.jsonl for shard K of N).",
        optional(str),
    )
    outputs: tuple[str, ...] = setting(
        (PREDICT,),
        "Prediction columns: predict, label (the class label), predict_proba (one predict_proba_<label> "
        "column per class), comma-separated.",
        names,
    )
    keep_columns: tuple[str, ...] = setting(
        (), "Input columns copied to the output before the predictions (ids), comma-separated.", names
    )
    on_error: str = setting(
        "skip",
        "A row the model cannot take: skip it (into the errors file; exit code 2 at the end) or fail (stop "
        "at the first one, exit code 2).",
        choices=("skip", "fail"),
    )
    workers: int | None = setting(
        None, "Chunks scored at once, in threads. Default: the CPUs this process may use.", optional(int), minimum=1
    )
    format: str = setting("parquet", "Output format.", choices=FORMATS)
    input_format: str = setting(
        "auto",
        "Input format; auto: from each file's suffix (.parquet/.pq, .csv, .jsonl/.ndjson, each optionally "
        ".gz/.bz2/.zst).",
        choices=("auto", *FORMATS),
    )
    positional: bool = setting(
        False,
        "Take the model's features from the input's columns by position (every column not in "
        "--keep_columns, in order), for models without feature names.",
        boolean,
    )
    chunk_rows: int = setting(
        65536, "Rows per chunk: the unit that is scored, written as one part and resumed.", int, minimum=1
    )
    shard_index: int | None = setting(
        None,
        "This process's shard, 0-based: it scores the input files whose position modulo --shard_count is this index. "
        "Default: $JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's), else 0.",
        optional(int),
        minimum=0,
    )
    shard_count: int = setting(1, "How many shards share the input files (the Job's completions).", int, minimum=1)
    overwrite: bool = setting(
        False, "Replace what this shard wrote to --output before, instead of resuming it.", boolean
    )
    progress: str = setting(
        "auto",
        "auto: a progress bar on a terminal, else a log line every 10 s; bar; log; none.",
        choices=("auto", "bar", "log", "none"),
    )

    def check(self) -> None:
        super().check()
        if self.model_repository:
            raise SettingsError("--model_repository: a batch job scores with one model (--model_dir)")
        for flag, value in (("--input", self.input), ("--output", self.output)):
            if not value:
                raise SettingsError(f"{flag} is required")
        if not self.outputs:
            raise SettingsError("--outputs names no output")
        unknown = [name for name in self.outputs if name not in OUTPUTS]
        if unknown:
            raise SettingsError(f"--outputs: unknown {unknown}; choose from {', '.join(OUTPUTS)}")
        index = self.shard()[0]
        if index >= self.shard_count:
            raise SettingsError(f"shard index {index} is out of range for --shard_count {self.shard_count}")

    def shard(self) -> tuple[int, int]:
        """(index, count) of this process's shard."""
        if self.shard_index is not None:
            return self.shard_index, self.shard_count
        raw = os.environ.get("JOB_COMPLETION_INDEX", "")
        try:
            return (int(raw) if raw else 0), self.shard_count
        except ValueError:
            raise SettingsError(f"JOB_COMPLETION_INDEX={raw!r}: expected an integer") from None

    def errors_path(self) -> str:
        if self.errors:
            return self.errors
        index, count = self.shard()
        name = "_errors.jsonl" if count == 1 else f"_errors-{index}-of-{count}.jsonl"
        return join(self.output, name)


def join(base: str, name: str) -> str:
    """``name`` inside ``base``, a local path or a URI."""
    if "://" in base:
        return base.rstrip("/") + "/" + name
    return str(Path(base) / name)
