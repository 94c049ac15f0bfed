"""Render the kustomize overlays and the Helm chart with the real tools.

The tools come from the helm/kubectl fixtures (.tools/bin first, then PATH).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "model-server"
MANIFESTS = REPO / "manifests"
OVERLAYS = sorted(p for p in (MANIFESTS / "overlays").iterdir() if (p / "kustomization.yaml").exists())
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(kubectl: str, directory: Path) -> list[dict]:
    return documents(run([kubectl, "kustomize", str(directory)]).stdout)


def helm_template(helm: str, *args: str, release: str = "demo", namespace: str = "models") -> list[dict]:
    return documents(run([helm, "template", release, str(CHART), "--namespace", namespace, *args]).stdout)


def helm_template_error(helm: str, *args: str) -> str:
    """The error `helm template` gives for these values; fails the test if it renders."""
    result = run([helm, "template", "demo", str(CHART), *args], check=False)
    assert result.returncode != 0, f"helm template {' '.join(args)} rendered although it should fail"
    return result.stderr


def one(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[o['kind'] for o in objects]}"
    return found[0]


def kinds(objects: list[dict]) -> list[str]:
    return sorted(o["kind"] for o in objects)
