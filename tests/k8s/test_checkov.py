"""checkov (its own venv under .tools/, from scripts/install-tools.sh) on every rendering of the chart.

No check may fail. A skip is only accepted with its reason, given where it applies (the
`checkov.io/skipN` annotations of the `helm test` pod). checkov scans Kubernetes' own kinds
(Pod, ConfigMap, PodDisruptionBudget, NetworkPolicy); the InferenceService and ServingRuntime are
KServe CRDs it does not know, so their pod settings are covered by test_chart's hardening test and
the strict CRD validation instead. Run offline: no platform download, no update check.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.tools import project_tool

from .rendering import CHART, run
from .test_chart import RENDERINGS


@pytest.fixture(scope="module")
def report(helm, tmp_path_factory):
    checkov = project_tool("checkov")
    rendered = tmp_path_factory.mktemp("rendered")
    for name, values in RENDERINGS.items():
        # A real namespace: rendering into "default" is a finding of its own (CKV_K8S_21).
        manifest = run([helm, "template", "demo", str(CHART), "--namespace", "models", *values]).stdout
        (rendered / f"{name}.yaml").write_text(manifest)
    result = subprocess.run(
        [checkov, "-d", str(rendered), "--framework", "kubernetes", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
    )
    # Exit code 1 means "findings": the tests below say which.
    assert result.stdout.lstrip().startswith("{"), result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(result.stdout)


def test_checkov_scanned_every_rendering(report):
    assert report["summary"]["parsing_errors"] == 0
    files = {check["file_path"].lstrip("/") for check in report["results"]["passed_checks"]}
    assert files == {f"{name}.yaml" for name in RENDERINGS}
    assert report["summary"]["passed"] > 100


def test_no_checkov_check_fails(report):
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert failed == []


def test_every_skip_is_justified_and_only_on_the_test_pod_the_stream_consumer_and_the_batch_pods(report):
    skipped = report["results"]["skipped_checks"]
    batch = {c["resource"] for c in skipped if c["resource"].split(".")[2].startswith("demo-model-server-batch")}
    assert batch, "the batch Job and CronJob renderings were scanned"
    assert {c["resource"] for c in skipped} - batch <= {
        "Pod.models.demo-model-server-test",
        "Deployment.models.demo-model-server-stream",
    }
    assert all(len(c["check_result"].get("suppress_comment", "")) > 20 for c in skipped), skipped
