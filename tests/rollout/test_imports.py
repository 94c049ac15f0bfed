"""The rollout runs in CI jobs: it imports no KServe and no server transport."""

import subprocess
import sys

from tests.support.tools import REPO

FORBIDDEN = ("kserve", "fastapi", "grpc", "uvicorn")


def test_the_rollout_imports_no_kserve():
    code = f"import sys, model_server.rollout.__main__; print(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == [], f"the rollout imported {result.stdout.split()}"
