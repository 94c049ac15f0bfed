"""Installs full MLflow (for ``mlflow models serve``, MLflow's own scoring server) into its own venv, once.

Not into the project's venv: the tests use mlflow-skinny there, and full MLflow pins and pulls
in much more (Flask, gunicorn, SQLAlchemy, alembic, docker, ...). The MLflow release is the
newest whose whole set (mlflow, mlflow-skinny, mlflow-tracing) the package index has; scikit-learn
is pinned to the harness's own, so both servers unpickle the very same model file.
Used by the /invocations benchmark (benchmarks/mlflow_invocations.py) and by the tests that
compare our answers with MLflow's (tests/server/test_mlflow_protocol.py), which also run an MLflow
2.x client (mlflow-skinny 2, in a venv of its own: ``ensure_mlflow2_client``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sklearn

MLFLOW_VERSION = "3.17.2"
MLFLOW2_CLIENT_VERSION = "2.22.5"
VENVS = Path(__file__).resolve().parent / ".venvs"
VENV_DIR = Path(os.environ.get("MLFLOW_VENV_DIR", VENVS / "mlflow"))


def requirements() -> list[str]:
    return [f"mlflow=={MLFLOW_VERSION}", f"scikit-learn=={sklearn.__version__}"]


def ensure_mlflow(venv_dir: Path = VENV_DIR) -> Path:
    """Path of the venv's `mlflow` executable, creating/updating the venv if needed (minutes, once)."""
    return ensure_venv(venv_dir, requirements()) / "mlflow"


def ensure_mlflow2_client(venv_dir: Path = VENVS / "mlflow2-client") -> Path:
    """Path of a venv's `python` with MLflow 2's client (mlflow-skinny 2.x, pandas; scipy too: its
    client's dump_input_data looks for scipy.sparse with a find_spec that fails without scipy)."""
    import pandas
    import scipy

    wanted = [
        f"mlflow-skinny=={MLFLOW2_CLIENT_VERSION}",
        f"pandas=={pandas.__version__}",
        f"scipy=={scipy.__version__}",
    ]
    return ensure_venv(venv_dir, wanted) / "python"


def ensure_venv(venv_dir: Path, wanted: list[str]) -> Path:
    """The bin directory of a venv holding ``wanted``, created (or recreated) once."""
    stamp = venv_dir / "installed-requirements.txt"
    if stamp.exists() and stamp.read_text() == "\n".join(wanted):
        return venv_dir / "bin"
    print(f"installing {', '.join(wanted)} into {venv_dir} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True)
    subprocess.run(
        [str(venv_dir / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *wanted], check=True
    )
    stamp.write_text("\n".join(wanted))
    return venv_dir / "bin"


if __name__ == "__main__":
    print(ensure_mlflow())
    print(ensure_mlflow2_client())
