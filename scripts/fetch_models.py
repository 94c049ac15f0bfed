#!/usr/bin/env python3
"""Download the stable and the new model version for a rollout, as KServe's storage initializer
would (kserve-storage: `make release-deps`), into DEST/stable and DEST/new.

  fetch_models.py --release iris --namespace prod --new-uri s3://models/iris/v2 --dest models
                  [--stable-uri URI] [--kube-context CTX] [--helm helm]

The stable URI is the release's model.storageUri (`helm get values --all -o json`) unless
--stable-uri gives it. Exit codes: 0 both downloaded, 1 a download or helm failed, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


class FetchError(Exception):
    pass


def stable_uri(helm: list[str], release: str, namespace: str) -> str:
    """The storageUri the release serves now, from its values."""
    command = [*helm, "get", "values", release, "--namespace", namespace, "--all", "--output", "json"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FetchError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}")
    uri = (json.loads(result.stdout).get("model") or {}).get("storageUri") or ""
    if not uri:
        raise FetchError(
            f"release {release} has no model.storageUri (it serves the image's own model): give --stable-uri"
        )
    return uri


def download(uri: str, directory: Path) -> None:
    try:
        from kserve_storage import Storage  # the storage initializer's own downloader
    except ImportError:
        raise FetchError("kserve-storage is not installed: run `make release-deps`") from None
    directory.mkdir(parents=True, exist_ok=True)
    try:
        Storage.download(uri, str(directory))
    except Exception as exc:  # any scheme's failure (credentials, missing object) ends the job
        raise FetchError(f"cannot download {uri}: {type(exc).__name__}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/fetch_models.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--release", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--new-uri", required=True)
    parser.add_argument("--stable-uri", default="")
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--kube-context", default="")
    parser.add_argument("--helm", default="helm")
    args = parser.parse_args(argv)
    helm = [args.helm, *(["--kube-context", args.kube_context] if args.kube_context else [])]
    try:
        stable = args.stable_uri or stable_uri(helm, args.release, args.namespace)
        for role, uri in (("stable", stable), ("new", args.new_uri)):
            print(f"fetch_models: {role}: {uri} -> {args.dest / role}", flush=True)
            download(uri, args.dest / role)
    except FetchError as exc:
        print(f"fetch_models: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
