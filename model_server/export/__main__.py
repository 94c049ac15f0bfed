"""``python -m model_server.export --model_dir DIR --out DIR``: see ``export/__init__.py``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..core.errors import ModelServerError
from . import __doc__ as DOC
from .exporter import DEFAULT_TOLERANCE, ONNX_FILENAME, export


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model_server.export", description=DOC.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, type=Path, help="the model directory to export")
    parser.add_argument("--out", required=True, type=Path, help="the ONNX model directory to write (new, or empty)")
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="the output format")
    parser.add_argument("--sample", type=Path, help="Parquet or CSV rows to check parity on (default: synthesized)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help="largest accepted difference in probabilities (or, relative, in a regressor's predictions)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = export(args.model_dir, args.out, args.sample, args.tolerance)
    except (ModelServerError, ImportError) as exc:
        print(f"cannot export {args.model_dir}: {exc}", file=sys.stderr)
        sys.exit(1)
    parity = report["parity"]
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in parity["max_abs_diff"].items())
    written = f"{args.out}/{ONNX_FILENAME}"
    print(f"wrote {written}: parity holds on {parity['rows']} rows ({diffs}; tolerance {parity['tolerance']:g})")


if __name__ == "__main__":
    main()
