"""``python -m model_server.batch``: score Parquet, CSV or JSON Lines files with a model directory.

Exit codes: 0 every row scored; 2 some rows were refused (each in the errors file), or a flag
cannot be used (as argparse); 1 the run stopped: an unreadable file, a missing column, a model that
cannot load, an output that cannot be written (one line on stderr says which).
"""

from __future__ import annotations

import json
import logging
import sys

from ..core.errors import ModelServerError, RowsRejected, status_of

DESCRIPTION = (
    "Score Parquet, CSV or JSON Lines files (local, s3://, gs://) with a scikit-learn model directory, "
    "through the server's own input checks and engines. Output: a directory of parts with a manifest; "
    "a rerun with the same arguments resumes. Exit codes: 0 all rows scored, 2 rows refused (see "
    "--errors), 1 the run stopped."
)
logger = logging.getLogger("model_server.batch")


def main(argv: list[str] | None = None) -> int:
    from .settings import BatchSettings

    settings = BatchSettings.from_args(argv, prog="python -m model_server.batch", description=DESCRIPTION)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        from .runner import run

        summary = run(settings)
    except ModuleNotFoundError as exc:
        if exc.name != "pyarrow":
            raise
        print("batch: needs pyarrow: pip install 'sklearn-model-server[batch]'", file=sys.stderr)
        return 1
    except RowsRejected as exc:
        print(f"batch: stopped: {exc}", file=sys.stderr)
        return status_of(exc).exit_code
    except ModelServerError as exc:
        print(f"batch: stopped: {exc}", file=sys.stderr)
        return status_of(exc).exit_code
    except OSError as exc:
        print(f"batch: stopped: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    logger.info(
        "done: rows in %s, out %s, rejected %s; %.2f s, %s rows/s; output %s, errors %s",
        f"{summary.rows_in:,}",
        f"{summary.rows_out:,}",
        f"{summary.rows_rejected:,}",
        summary.seconds,
        f"{summary.rows_per_s:,.0f}",
        summary.output,
        summary.errors,
    )
    print(json.dumps(summary.to_dict()))
    return status_of(RowsRejected()).exit_code if summary.rows_rejected else 0


if __name__ == "__main__":
    sys.exit(main())
