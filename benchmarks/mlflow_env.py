"""Installs full MLflow (for ``mlflow models serve``, MLflow's own scoring server) into its own venv, once.

Not into the project's venv: the tests use mlflow-skinny there, and full MLflow pins and pulls
in much more (Flask, gunicorn, SQLAlchemy, alembic, docker, ...). The MLflow release is the
newest whose whole set (mlflow, mlflow-skinny, mlflow-tracing) the package index has; scikit-learn
is pinned to the harness's own, so both servers unpickle the very same model file.
Used by the /invocations benchmark (benchmarks/mlflow_invocations.py) and by the tests that
compare our answers with MLflow's (tests/server/test_mlflow_protocol.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sklearn

MLFLOW_VERSION = "3.17.2"
VENV_DIR = Path(os.environ.get("MLFLOW_VENV_DIR", Path(__file__).resolve().parent / ".venvs" / "mlflow"))


def requirements() -> list[str]:
    return [f"mlflow=={MLFLOW_VERSION}", f"scikit-learn=={sklearn.__version__}"]


def ensure_mlflow(venv_dir: Path = VENV_DIR) -> Path:
    """Path of the venv's `mlflow` executable, creating/updating the venv if needed (minutes, once)."""
    stamp = venv_dir / "installed-requirements.txt"
    wanted = "\n".join(requirements())
    mlflow_bin = venv_dir / "bin" / "mlflow"
    if mlflow_bin.exists() and stamp.exists() and stamp.read_text() == wanted:
        return mlflow_bin
    print(f"installing {', '.join(requirements())} into {venv_dir} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True)
    subprocess.run(
        [str(venv_dir / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements()],
        check=True,
    )
    stamp.write_text(wanted)
    return mlflow_bin


if __name__ == "__main__":
    print(ensure_mlflow())
