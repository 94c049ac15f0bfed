#!/usr/bin/env python3
"""Put a model version's drift profile beside it in its storage: DIR/profile.json and the
DIR/metadata.json that pins it (``python -m model_server.profile`` wrote both) are copied to the
version's URI, so that the server the cluster starts from that URI monitors drift.

  publish_profile.py --model-dir .ci-cache/models/new --model-uri s3://models/iris/v2

URIs: s3:// (and S3-compatible stores through the usual AWS_* variables, AWS_ENDPOINT_URL
included), gs://, or a local folder, through pyarrow's file systems as the batch front end reads
them. The model file is not touched: metadata.json keeps its sha256. Exit codes: 0 published,
1 a file is missing or the storage refused it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

FILES = ("profile.json", "metadata.json")


class PublishError(Exception):
    pass


def publish(model_dir: Path, model_uri: str) -> list[str]:
    """Copy the profile and its pin to ``model_uri``; the URIs written."""
    from model_server.batch.sources import filesystem

    for name in FILES:
        if not (model_dir / name).is_file():
            raise PublishError(f"{model_dir / name} is missing: run python -m model_server.profile first")
    pinned = json.loads((model_dir / "metadata.json").read_text()).get("profile_sha256")
    actual = hashlib.sha256((model_dir / "profile.json").read_bytes()).hexdigest()
    if pinned != actual:
        raise PublishError(f"{model_dir}/metadata.json does not pin this profile.json (profile_sha256 {pinned})")
    fs, base = filesystem(model_uri)
    written = []
    # The profile first: a server that starts in between sees the old metadata, which does not
    # pin a profile, rather than a pin without its file.
    for name in FILES:
        try:
            fs.create_dir(base, recursive=True)
            with fs.open_output_stream(f"{base.rstrip('/')}/{name}") as out:
                out.write((model_dir / name).read_bytes())
        except OSError as exc:
            raise PublishError(f"cannot write {name} to {model_uri}: {exc}") from None
        written.append(f"{model_uri.rstrip('/')}/{name}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/publish_profile.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--model-uri", required=True)
    args = parser.parse_args(argv)
    try:
        for uri in publish(args.model_dir, args.model_uri):
            print(f"wrote {uri}")
    except PublishError as exc:
        print(f"publish_profile: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
