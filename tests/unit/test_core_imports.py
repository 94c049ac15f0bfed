"""The line the core never crosses, found by walking the folders rather than from a list: no
module under ``model_server/core`` imports KServe, a transport library or a front end, at import
time (a fresh interpreter imports them all) or lazily (every import statement is read)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import REPO

PACKAGE = REPO / "model_server"
TRANSPORTS = ("kserve", "fastapi", "grpc", "uvicorn", "aiokafka")
# The front ends that must stay KServe-free: the edge runtime serves the same HTTP routes without
# it, the Kafka consumer and the batch job run beside it, and every front end may log payloads through
# payload_log's sinks. (Their own transport libraries they may use: aiokafka for the Kafka sink.)
KSERVE_FREE = {
    "http": ("kserve", "fastapi", "grpc", "aiokafka"),
    "edge": ("kserve", "fastapi", "grpc", "aiokafka"),
    "stream": ("kserve", "fastapi", "grpc"),
    "batch": ("kserve", "fastapi", "grpc", "uvicorn", "aiokafka"),
    "export": ("kserve", "fastapi", "grpc", "uvicorn", "aiokafka"),
    "payload_log": ("kserve", "fastapi", "grpc", "uvicorn"),
    "profile": ("kserve", "fastapi", "grpc", "uvicorn", "aiokafka"),
}


def modules_under(folder: Path) -> list[str]:
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def front_ends() -> list[str]:
    return sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name != "core")


def crossings(folder: Path, forbidden: tuple[str, ...], front_end_folders: list[str]) -> list[str]:
    """Every import statement under ``folder`` (lazy ones too) of a forbidden library, or of a
    front-end folder of the package (by absolute or relative name)."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        module = ".".join(path.relative_to(folder.parent.parent).with_suffix("").parts)
        package = module.split(".")[: -1 if path.name != "__init__.py" else None]
        if path.name == "__init__.py":
            package = package[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                target = ".".join([*base, node.module] if node.module else base)
                targets = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                top, _, rest = target.partition(".")
                inside = rest.split(".")[0] if top == folder.parent.name else None
                if top in forbidden or inside in front_end_folders:
                    found.append(f"{path.relative_to(folder.parent.parent)}:{node.lineno} imports {target}")
    return found


def test_no_core_module_imports_a_transport_or_a_front_end():
    assert crossings(PACKAGE / "core", TRANSPORTS, front_ends()) == []


def test_every_core_module_imports_in_a_fresh_interpreter_without_a_transport():
    modules = modules_under(PACKAGE / "core")
    assert len(modules) > 20  # the walk found the core
    code = (
        f"import importlib, sys\nfor name in {modules!r}: importlib.import_module(name)\n"
        f"print(' '.join(m for m in sys.modules if m.split('.')[0] in {TRANSPORTS!r} "
        f"or m.split('.')[:2] in [['model_server', f] for f in {front_ends()!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == [], f"importing the core loaded {result.stdout.split()}"


@pytest.mark.parametrize("front_end", sorted(KSERVE_FREE))
def test_the_kserve_free_front_ends_stay_free(front_end):
    assert crossings(PACKAGE / front_end, KSERVE_FREE[front_end], []) == []


def test_the_walk_would_see_a_crossing(tmp_path):
    core = tmp_path / "pkg" / "core"
    (core / "codec").mkdir(parents=True)
    (tmp_path / "pkg" / "rest").mkdir()
    (core / "__init__.py").write_text("")
    (core / "codec" / "__init__.py").write_text("from ...rest import routes\n")
    (core / "lazy.py").write_text("def f():\n    import grpc.aio\n    from kserve import Model\n")
    (core / "fine.py").write_text("from .codec import x\nfrom . import lazy\nimport numpy\n")
    assert crossings(core, TRANSPORTS, ["rest"]) == [
        "pkg/core/codec/__init__.py:1 imports pkg.rest",
        "pkg/core/lazy.py:2 imports grpc.aio",
        "pkg/core/lazy.py:3 imports kserve",
    ]


def test_the_server_loads_kserve_without_its_kubernetes_client():
    code = (
        "import sys\n"
        "from model_server.kserve.import_shim import skip_package_init\n"
        "skip_package_init()\n"
        "import model_server.kserve.server, model_server.kserve.model, model_server.kserve.grpc\n"
        "print('kubernetes' in sys.modules, 'kserve.model_server' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == ["False", "True"]
