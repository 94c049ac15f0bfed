"""scripts/kind/overlays: the project's kustomize overlays as `--deploy kustomize` applies them in kind.

Rendered with the real `kubectl kustomize`; no cluster is needed for that.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import kind_e2e
import pytest
import yaml

from tests.support.tools import project_tool

REPO = Path(__file__).resolve().parents[2]
KIND_OVERLAYS = REPO / "scripts" / "kind" / "overlays"
DEMO_V2_ARGS = ["--model_dir=/opt/model-server/demo-v2"]
# kind overlay -> the project overlay it builds on
BUILDS_ON = {
    "standard": "standard",
    "knative": "knative",
    "canary-standard": "canary-standard",
    "canary-knative": "canary-knative",
    "promoted-standard": "standard",
    "promoted-knative": "knative",
}


def render(overlay: str) -> tuple[dict, dict]:
    """The InferenceService spec and the ServingRuntime of a kind overlay."""
    output = subprocess.run(
        [project_tool("kubectl"), "kustomize", str(KIND_OVERLAYS / overlay)], capture_output=True, text=True, timeout=60
    )
    assert output.returncode == 0, output.stderr
    documents = {doc["kind"]: doc for doc in yaml.safe_load_all(output.stdout)}
    return documents["InferenceService"]["spec"], documents["ServingRuntime"]


def test_every_kind_overlay_is_listed_here():
    assert {p.name for p in KIND_OVERLAYS.iterdir() if p.name != "components"} == set(BUILDS_ON)


@pytest.mark.parametrize(("overlay", "project_overlay"), BUILDS_ON.items())
def test_kind_overlay_builds_on_the_project_overlay_with_the_kind_image(overlay, project_overlay):
    kustomization = yaml.safe_load((KIND_OVERLAYS / overlay / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [f"../../../../manifests/overlays/{project_overlay}"]
    spec, runtime = render(overlay)
    assert [c["image"] for c in runtime["spec"]["containers"]] == ["kind.local/model-server:e2e"]
    # The demo models are baked into the image: nothing is downloaded.
    assert "storageUri" not in yaml.safe_dump(spec)


def test_kind_image_matches_the_script_default():
    default = kind_e2e.Options().image
    component = yaml.safe_load((KIND_OVERLAYS / "components" / "kind-image" / "kustomization.yaml").read_text())
    (image,) = component["images"]
    assert f"{image['newName']}:{image['newTag']}" == default


@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_stable_overlay_serves_model_v1(mode):
    spec, _ = render(mode)
    assert "args" not in spec["predictor"]["model"]
    assert "canary" not in spec and "canaryTrafficPercent" not in spec["predictor"]


def test_standard_canary_is_model_v2_at_20_percent():
    spec, _ = render("canary-standard")
    (canary,) = spec["canary"]
    assert canary["trafficPercent"] == 20
    assert canary["predictor"]["model"]["args"] == DEMO_V2_ARGS
    assert "args" not in spec["predictor"]["model"]


def test_knative_canary_is_a_model_v2_revision_at_20_percent():
    spec, _ = render("canary-knative")
    assert spec["predictor"]["canaryTrafficPercent"] == 20
    assert spec["predictor"]["model"]["args"] == DEMO_V2_ARGS


@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_promoted_overlay_serves_model_v2_only(mode):
    spec, _ = render(f"promoted-{mode}")
    assert spec["predictor"]["model"]["args"] == DEMO_V2_ARGS
    assert "canary" not in spec and "canaryTrafficPercent" not in spec["predictor"]
