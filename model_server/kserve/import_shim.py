"""Import KServe's modules without running ``kserve/__init__.py``.

The package's ``__init__`` imports, besides the ``ModelServer`` this server uses, KServe's
Kubernetes API client (``KServeClient``) and the generated model classes of every KServe
resource, which pull in the whole ``kubernetes`` client: about a quarter of a second and 26 MB
of a server's cold start and memory, for code the server never calls. Registering the package
as a bare namespace first lets ``import kserve.model_server`` load only what it needs. What
stays (``docs/edge.md``): pandas (``kserve.protocol.infer_type`` imports it at import), FastAPI
and grpcio, which the server does use.

Call it before anything imports ``kserve``; if KServe is imported already, it does nothing. Our
modules import KServe's submodules by name (``from kserve.model import Model``) for this reason.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def skip_package_init() -> None:
    if "kserve" in sys.modules:
        return
    spec = importlib.util.find_spec("kserve")
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed: the import that needs it says so
    package = types.ModuleType("kserve")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__package__ = "kserve"
    sys.modules["kserve"] = package
