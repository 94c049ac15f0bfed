"""python -m model_server.profile --model_dir DIR --data FILE: write DIR/profile.json, the
reference profile of the model's input features and of its predictions on those rows, and pin it
in DIR/metadata.json (``profile_sha256``)."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from ..batch.scoring import Scorer
from ..batch.sources import Reader, list_inputs
from ..core.codec import PREDICT
from ..core.errors import ModelServerError, status_of
from ..core.metadata import METADATA_FILENAME
from .building import PROFILE_VERSION, column_profile

logger = logging.getLogger("model_server.profile")
PROFILE_FILENAME = "profile.json"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m model_server.profile",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model_dir", required=True, help="The model directory; profile.json is written there.")
    parser.add_argument(
        "--data",
        required=True,
        help="Training rows: a Parquet, CSV or JSON Lines file, a folder or a glob (local, s3://).",
    )
    parser.add_argument("--input_format", default="auto", choices=("auto", "parquet", "csv", "jsonl"))
    parser.add_argument("--bins", type=int, default=10, help="Quantile bins per numeric feature.")
    parser.add_argument(
        "--top_categories", type=int, default=20, help="Categories kept per string feature; the rest is other."
    )
    parser.add_argument("--max_rows", type=int, default=1_000_000, help="Rows read at most (the first ones).")
    parser.add_argument("--positional", action="store_true", help="Take the data's columns in order as the features.")
    args = parser.parse_args(argv)
    for name in ("bins", "top_categories", "max_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def read_rows(spec: str, input_format: str, max_rows: int) -> pa.Table:
    fs, files = list_inputs(spec, input_format)
    tables, count = [], 0
    for file in files:
        reader = Reader(fs, file, 65_536)
        columns = reader.column_names()
        for chunk in reader.chunks(columns):
            table = pa.table({name: pa.array(chunk.columns[name]) for name in columns})
            tables.append(table.slice(0, max_rows - count))
            count += tables[-1].num_rows
            if count >= max_rows:
                return pa.concat_tables(tables, promote_options="permissive")
    return pa.concat_tables(tables, promote_options="permissive")


def build_profile(args) -> dict:
    scorer = Scorer(args.model_dir, positional=args.positional)
    table = read_rows(args.data, args.input_format, args.max_rows)
    features = scorer.feature_columns(list(table.schema.names), f"--data {args.data}")
    scored = scorer.score(table)
    if scored.rejected:
        first = scored.rejected[0]
        logger.warning(
            "%d rows refused by the model and left out of the outputs; row %d: %s",
            len(scored.rejected),
            first.row,
            first.reason,
        )
    predictor = scorer.predictor
    labels = getattr(predictor, "class_labels", None)
    classifier = labels is not None and len(labels) > 0
    outputs = {
        name: column_profile(scored.table.column(name), args.bins, args.top_categories, categorical=classifier)
        for name in scored.table.schema.names
        if name.startswith(PREDICT)
    }
    return {
        "profile_version": PROFILE_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": args.data,
        "rows": table.num_rows,
        "model_version": predictor.version,
        "features": {name: column_profile(table.column(name), args.bins, args.top_categories) for name in features},
        "outputs": outputs,
    }


def write_profile(model_dir: Path, profile: dict) -> Path:
    """profile.json, and its sha256 pinned in metadata.json (written aside, renamed into place)."""
    path = model_dir / PROFILE_FILENAME
    body = (json.dumps(profile, indent=2, sort_keys=True) + "\n").encode()
    path.write_bytes(body)
    metadata_path = model_dir / METADATA_FILENAME
    metadata = json.loads(metadata_path.read_text()) if metadata_path.is_file() else {}
    metadata["profile_sha256"] = hashlib.sha256(body).hexdigest()
    partial = metadata_path.with_name(f".{METADATA_FILENAME}.partial")
    partial.write_text(json.dumps(metadata, indent=2) + "\n")
    partial.rename(metadata_path)
    return path


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    try:
        profile = build_profile(args)
        path = write_profile(Path(args.model_dir), profile)
    except ModelServerError as exc:
        logger.error("%s", exc)
        sys.exit(status_of(exc).exit_code)
    logger.info(
        "wrote %s: %d rows, %d features, %d outputs",
        path,
        profile["rows"],
        len(profile["features"]),
        len(profile["outputs"]),
    )


if __name__ == "__main__":
    main()
