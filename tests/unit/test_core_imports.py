"""The line the core never crosses: no KServe and no transport library below it."""

import subprocess
import sys

from tests.support.tools import REPO

CORE = (
    "artifact",
    "batching",
    "codec",
    "engines",
    "fitted",
    "errors",
    "inference",
    "metadata",
    "metrics",
    "predictor",
    "schema",
    "settings",
)
# Plain ASGI routes: front ends without KServe (the edge runtime) serve them too.
KSERVE_FREE_FRONT_ENDS = ("rest", "cloudevent", "batch", "batch.runner")
FORBIDDEN = ("kserve", "fastapi", "grpc", "uvicorn")
# The Kafka front end: no KServe, no FastAPI, no gRPC (its ops port runs on uvicorn).
STREAM = ("stream.__main__", "stream.consumer", "stream.messages", "stream.offsets", "stream.ops", "stream.settings")
STREAM_FORBIDDEN = ("kserve", "fastapi", "grpc")


def test_core_imports_no_kserve_and_no_transport():
    modules = ", ".join(f"model_server.{name}" for name in (*CORE, *KSERVE_FREE_FRONT_ENDS))
    code = f"import sys, {modules}; print(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == [], f"the core imported {result.stdout.split()}"


def test_the_stream_consumer_imports_no_kserve():
    modules = ", ".join(f"model_server.{name}" for name in STREAM)
    code = f"import sys, {modules}; print(' '.join(m for m in {STREAM_FORBIDDEN!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == [], f"the stream consumer imported {result.stdout.split()}"


def test_the_check_would_see_a_crossing():
    code = "import sys, model_server.server; print('kserve' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "True"


def test_the_server_loads_kserve_without_its_kubernetes_client():
    code = (
        "import sys\n"
        "from model_server.kserve_import import skip_package_init\n"
        "skip_package_init()\n"
        "import model_server.server, model_server.model, model_server.grpc_server\n"
        "print('kubernetes' in sys.modules, 'kserve.model_server' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == ["False", "True"]
