"""Input files for the batch tests, the command run as a real process, and its output read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from model_server.demo import FEATURES
from tests.support.tools import REPO

BATCH = [sys.executable, "-m", "model_server.batch"]


def iris_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows of the demo model's four features around iris' ranges, with an ``id`` column."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal([5.8, 3.0, 3.7, 1.2], [0.8, 0.4, 1.7, 0.7], size=(n, 4)), columns=FEATURES)
    frame.insert(0, "id", [f"r{i}" for i in range(n)])
    return frame


def write(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        with open(path, "w") as f:
            for record in frame.to_dict("records"):
                f.write(json.dumps(record) + "\n")
    return path


def run_batch(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "MODEL_SERVER_PROGRESS": "none", **(env or {})},
    )


def read_output(directory: Path, fmt: str = "parquet") -> pd.DataFrame:
    """Every part of an output directory, in part-name order (= input order)."""
    parts = sorted(Path(directory).glob(f"part-*.{fmt}"))
    if fmt == "parquet":
        return ds.dataset([str(p) for p in parts], format="parquet").to_table().to_pandas()
    if fmt == "csv":
        return pd.concat([pd.read_csv(p) for p in parts], ignore_index=True)
    return pd.concat([pd.read_json(p, lines=True) for p in parts], ignore_index=True)


def read_errors(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def part_bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(directory).glob("part-*"))}
