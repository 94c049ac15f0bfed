"""Fixtures for the Kubernetes tests: the real tools and the schema validator (skip, naming what is missing)."""

from __future__ import annotations

import pytest

from tests.support.tools import project_tool

from .schemas import SchemaValidator, kserve_crds_dir, third_party_crds_dir


@pytest.fixture(scope="session")
def helm() -> str:
    return project_tool("helm")


@pytest.fixture(scope="session")
def kubectl() -> str:
    return project_tool("kubectl")


@pytest.fixture(scope="session")
def schema_validator() -> SchemaValidator:
    crds = kserve_crds_dir()
    if not list(crds.glob("serving.kserve.io_*.yaml")):
        pytest.skip(f"no KServe CRDs in {crds} (set KSERVE_CRDS_DIR to the official v0.20 CRDs)")
    others = third_party_crds_dir()
    if not list(others.rglob("*.yaml")):
        pytest.skip(f"no third-party CRDs in {others} (set CRDS_DIR to shared/crds: Prometheus Operator, KEDA, ...)")
    return SchemaValidator(crds, others)
