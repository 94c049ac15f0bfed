"""The Helm values that scripts/kind_e2e.py passes, rendered by the real chart.

The plan's `helm upgrade` commands (`kind_e2e.plan`) are replayed as
`helm template` (with --reuse-values, each upgrade keeps the earlier values), so
a value the chart does not know or renders differently fails here, not on a
user's kind cluster.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import kind_e2e
import pytest
import yaml

from tests.support.tools import project_tool

REPO = Path(__file__).resolve().parents[2]
DEMO_V2_ARGS = ["--model_dir=/opt/model-server/demo-v2"]


def model_upgrades(mode: str) -> dict[str, list[str]]:
    """The --set arguments of the plan's install, canary and promote commands."""
    chart = str(REPO / "charts" / "model-server")
    plan = kind_e2e.plan(kind_e2e.parse_args(["--mode", mode]))
    chart_commands = [command.argv for command in plan if command.argv[0] == "helm" and chart in command.argv]
    assert len(chart_commands) == 3, chart_commands
    return {
        name: [arg for i, value in enumerate(argv) if argv[i - 1] == "--set" for arg in ("--set", value)]
        for name, argv in zip(("install", "canary", "promote"), chart_commands, strict=True)
    }


def render(*set_args: list[str]) -> dict:
    """The InferenceService spec the chart renders with the accumulated values."""
    args = [arg for group in set_args for arg in group]
    result = subprocess.run(
        [
            project_tool("helm"),
            "template",
            "iris",
            str(REPO / "charts" / "model-server"),
            "--namespace",
            "model-server-e2e",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    (isvc,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "InferenceService"]
    return isvc


def runtime_image(set_args: list[str]) -> str:
    result = subprocess.run(
        [project_tool("helm"), "template", "iris", str(REPO / "charts" / "model-server"), *set_args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    (runtime,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "ServingRuntime"]
    return runtime["spec"]["containers"][0]["image"]


@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_install_serves_model_v1_from_the_kind_image(mode):
    upgrades = model_upgrades(mode)
    isvc = render(upgrades["install"])
    assert isvc["metadata"]["name"] == "iris"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == mode.capitalize()
    predictor = isvc["spec"]["predictor"]
    assert "storageUri" not in predictor["model"] and "args" not in predictor["model"]
    assert predictor["maxReplicas"] == 3 and predictor["minReplicas"] == 1
    assert runtime_image(upgrades["install"]) == "kind.local/model-server:e2e"


def test_standard_canary_is_spec_canary_with_model_v2_at_20_percent():
    upgrades = model_upgrades("standard")
    spec = render(upgrades["install"], upgrades["canary"])["spec"]
    (canary,) = spec["canary"]
    assert canary["trafficPercent"] == 20
    assert canary["predictor"]["model"]["args"] == DEMO_V2_ARGS
    assert "args" not in spec["predictor"]["model"]
    assert spec["predictor"]["scaleMetric"] == "cpu"  # the HPA the autoscaling step watches


def test_knative_canary_is_a_model_v2_revision_at_20_percent():
    upgrades = model_upgrades("knative")
    predictor = render(upgrades["install"], upgrades["canary"])["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 20
    assert predictor["model"]["args"] == DEMO_V2_ARGS


@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_promotion_serves_model_v2_without_a_canary(mode):
    upgrades = model_upgrades(mode)
    spec = render(upgrades["install"], upgrades["canary"], upgrades["promote"])["spec"]
    assert spec["predictor"]["model"]["args"] == DEMO_V2_ARGS
    assert "canary" not in spec and "canaryTrafficPercent" not in spec["predictor"]
