"""Batch scoring: files in, predictions out, through the same predictor as the server.

    python -m model_server.batch --model_dir DIR --input PATH --output DIR   (see docs/batch.md)

Python API:

- ``Scorer(model_dir, outputs=..., keep_columns=...)``: ``scorer(frame)`` scores a pandas
  DataFrame or an Arrow table / record batch (a Dask partition, a Spark ``mapInPandas`` batch, a
  Ray batch) and returns the same kind; ``scorer.score(frame)`` also returns the refused rows.
- ``run(BatchSettings(...))``: a whole run, as the command does it.

Modules: ``settings`` (the flags), ``sources`` (input files, read in chunks), ``scoring`` (a chunk
-> checked X -> predictions and refused rows), ``parts`` (output parts, manifest, resume),
``runner`` (workers, sharding), ``progress``.

May import: the core, pyarrow, tqdm (the ``[batch]`` extra). Not KServe or any transport.
"""

from .settings import BatchSettings

__all__ = ["BatchSettings", "Rejection", "Scored", "Scorer", "run"]


def run(settings: BatchSettings):
    from .runner import run as run_batch

    return run_batch(settings)


def __getattr__(name: str):
    # Imported on first use: the package (and `python -m model_server.batch`, which says what to
    # install) loads without pyarrow, which the default server image leaves out.
    if name in ("Rejection", "Scored", "Scorer"):
        from . import scoring

        return getattr(scoring, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
