"""Installs MLServer into its own venv (its pins conflict with KServe's), once.

scikit-learn is pinned to the version the harness itself runs, so MLServer
unpickles the very same model file the other servers load. uvloop is held at
0.21: with 0.22+ MLServer 1.7's inference worker dies at start-up
(asyncio.get_event_loop() with no loop raises in the worker process).
"""

import subprocess
import sys
from pathlib import Path

import sklearn

MLSERVER_VERSION = "1.7.1"
VENV_DIR = Path(__file__).resolve().parent / ".venvs" / "mlserver"


def requirements() -> list[str]:
    return [
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-sklearn=={MLSERVER_VERSION}",
        f"scikit-learn=={sklearn.__version__}",
        "uvloop==0.21.0",
    ]


def ensure_mlserver(venv_dir: Path = VENV_DIR) -> Path:
    """Path of the `mlserver` executable, creating/updating the venv if needed."""
    stamp = venv_dir / "installed-requirements.txt"
    wanted = "\n".join(requirements())
    mlserver_bin = venv_dir / "bin" / "mlserver"
    if mlserver_bin.exists() and stamp.exists() and stamp.read_text() == wanted:
        return mlserver_bin
    print(f"installing {', '.join(requirements())} into {venv_dir} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv_dir)], check=True)
    subprocess.run(
        [str(venv_dir / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements()],
        check=True,
    )
    stamp.write_text(wanted)
    return mlserver_bin
