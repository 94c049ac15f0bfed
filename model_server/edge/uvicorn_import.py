"""Import uvicorn's server modules without running ``uvicorn/__init__.py`` until it is needed.

The package's ``__init__`` imports ``uvicorn.main`` (its command line: click) and, through it,
``uvicorn.supervisors`` (multiprocessing, and watchfiles where it is installed), about 2 MB of
the edge runtime's memory for code it never runs: it serves one process through
``uvicorn.config`` and ``uvicorn.server``. ``defer_package_init`` registers the package as a module
whose submodules import as usual and whose first missing attribute (``uvicorn.run``,
``uvicorn.Config``) runs the real ``__init__`` then, so any other user of uvicorn in the process
still gets the whole package. Call it before anything imports uvicorn; once uvicorn is imported
it does nothing.
"""

from __future__ import annotations

import importlib.util
import sys
import types

# What uvicorn's __init__ exports that lives in a module of its own.
CHEAP = {"Config": "uvicorn.config", "Server": "uvicorn.server"}


def defer_package_init() -> None:
    name = "uvicorn"
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed: the import that needs it says so
    package = types.ModuleType(name)
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    package.__file__ = spec.origin
    package.__package__ = name

    def __getattr__(attribute: str):
        if attribute in CHEAP:  # uvicorn's own modules ask for these (lifespan/off.py: Config)
            return getattr(importlib.import_module(CHEAP[attribute]), attribute)
        del package.__getattr__  # the real __init__ defines what it defines, once
        spec.loader.exec_module(package)
        return getattr(package, attribute)

    package.__getattr__ = __getattr__
    sys.modules[name] = package
