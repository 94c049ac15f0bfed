"""The docs match the files: the chart README lists every value, docs/kubernetes.md names real paths."""

from __future__ import annotations

import re

import yaml

from .rendering import CHART, MANIFESTS, OVERLAYS, REPO

# Free-form objects documented as a whole (their keys are Kubernetes' own).
WHOLE_OBJECTS = {
    "resources",
    "podSecurityContext",
    "securityContext",
    "batch.resources",
    "batch.storageInitializer.resources",
}


def value_paths(values: dict, prefix: str = "") -> set[str]:
    paths = set()
    for key, value in values.items():
        path = prefix + key
        if isinstance(value, dict) and value and path not in WHOLE_OBJECTS:
            paths |= value_paths(value, path + ".")
        else:
            paths.add(path)
    return paths


def documented_values() -> set[str]:
    table = (CHART / "README.md").read_text().split("## Values", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Za-z0-9.]+)` \|", table, flags=re.M))


def test_chart_readme_lists_every_value_and_only_real_ones():
    values = value_paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    assert sorted(values - documented_values()) == []
    assert sorted(documented_values() - values) == []


def deploy_section() -> str:
    return (REPO / "docs" / "kubernetes.md").read_text()


def test_kubernetes_doc_names_every_overlay_and_only_real_paths():
    section = deploy_section()
    for overlay in OVERLAYS:
        assert f"manifests/overlays/{overlay.name}" in section
    for path in set(re.findall(r"\b((?:manifests|charts|scripts)/[\w./-]+\w)", section)):
        assert (REPO / path).exists(), path
    assert (MANIFESTS / "cluster-runtime").name in section


def test_kubernetes_doc_uses_real_chart_values():
    values = value_paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    used = set(re.findall(r"--set[ =]'?([A-Za-z.]+)=", deploy_section()))
    assert used and sorted(used - values) == []
