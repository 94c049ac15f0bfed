"""Fixtures for the Kubernetes tests: the real tools and the schema validator (skip, naming what is missing)."""

from __future__ import annotations

import pytest

from .rendering import find_tool
from .schemas import SchemaValidator, kserve_crds_dir


def _tool(name: str) -> str:
    found = find_tool(name)
    if not found:
        pytest.skip(f"{name} is not installed (scripts/install-tools.sh puts it in .tools/bin)")
    return found


@pytest.fixture(scope="session")
def helm() -> str:
    return _tool("helm")


@pytest.fixture(scope="session")
def kubectl() -> str:
    return _tool("kubectl")


@pytest.fixture(scope="session")
def schema_validator() -> SchemaValidator:
    crds = kserve_crds_dir()
    if not list(crds.glob("serving.kserve.io_*.yaml")):
        pytest.skip(f"no KServe CRDs in {crds} (set KSERVE_CRDS_DIR to the official v0.20 CRDs)")
    return SchemaValidator(crds)
