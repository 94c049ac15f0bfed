"""``<image> serve``: the command SageMaker runs a hosting container with.

SageMaker starts the image as ``docker run <image> serve`` (its arguments replace the image's CMD,
the exec-form ENTRYPOINT stays), so ``python -m model_server serve`` must start the server as
SageMaker's container contract says: the model in ``/opt/ml/model``, HTTP on port 8080 or
``SAGEMAKER_BIND_TO_PORT``, ``GET /ping`` and ``POST /invocations`` (``http/mlflow.py``). Without
``serve`` nothing changes: KServe's way of running the image is untouched.

Under ``serve`` gRPC is off unless asked for (``--enable_grpc``): SageMaker sends the container
HTTP only, and on a multi-container endpoint another container may own port 8081. Every flag given
after ``serve`` (or its ``MODEL_SERVER_*`` variable) wins over these defaults. docs/sagemaker.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..core.settings import env_name

COMMAND = "serve"
MODEL_DIR = "/opt/ml/model"  # where SageMaker puts the model archive's contents
PORT_VARIABLE = "SAGEMAKER_BIND_TO_PORT"


def arguments(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``argv`` as the settings parser takes it: a leading ``serve`` becomes SageMaker's defaults."""
    argv = list(argv)
    if not argv or argv[0] != COMMAND:
        return argv
    rest = argv[1:]
    defaults = []

    def unset(name: str) -> bool:
        flag = f"--{name}"
        given = any(arg == flag or arg.startswith(flag + "=") for arg in rest)
        return not given and env_name(name) not in environ

    if unset("model_dir") and unset("model_repository"):
        defaults.append(f"--model_dir={MODEL_DIR}")
    if unset("http_port") and environ.get(PORT_VARIABLE):
        defaults.append(f"--http_port={environ[PORT_VARIABLE]}")
    if unset("enable_grpc"):
        defaults.append("--enable_grpc=false")
    return defaults + rest
