"""skl2onnx in a child process: ``python -m model_server.onnx_convert`` reads a pickled
(estimator, number of features) on stdin and writes the ONNX graph's bytes on stdout.

Why a child: the conversion is seconds of pure Python for a large forest. In the server it would
hold the GIL all that time (a hot reload's p99 would show it), and its imports (skl2onnx, onnx)
would stay in the server's memory for good; in a child, the server's event loop runs on and the
converter's memory goes with the child.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys


def convert(estimator, n_features: int, timeout: float = 600) -> bytes:
    """The estimator as an ONNX graph (float [N, F] input; labels, then probabilities, no ZipMap)."""
    payload = pickle.dumps((estimator, n_features), pickle.HIGHEST_PROTOCOL)
    # The child must import what the estimator's pickle names (a user's own module too).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run(
        [sys.executable, "-m", "model_server.onnx_convert"],
        input=payload,
        capture_output=True,
        timeout=timeout,
        env=env,
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"the converter exited with {done.returncode}")
    return done.stdout


def main() -> None:
    import numpy as np
    from skl2onnx import to_onnx

    estimator, n_features = pickle.loads(sys.stdin.buffer.read())
    sample = np.zeros((1, n_features), dtype=np.float32)
    onnx_model = to_onnx(estimator, sample, options={"zipmap": False})
    sys.stdout.buffer.write(onnx_model.SerializeToString())


if __name__ == "__main__":
    main()
