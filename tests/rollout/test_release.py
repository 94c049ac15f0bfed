"""Steps 2 and 4: the helm commands, as data (like the kind script's plan), printed by --dry_run,
run through a fake helm that logs its calls, and replayed with the real chart in both KServe modes.

The analysis in-process here answers from a table (`TablePrometheus`): what it decides is tested
against a real Prometheus in test_live.py.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model_server.rollout.__main__ import run
from model_server.rollout.release import release_commands
from model_server.rollout.settings import RolloutSettings
from tests.k8s.schemas import SchemaValidator, kserve_crds_dir
from tests.support.servers import SUPPORT_ENV
from tests.support.tools import REPO, project_tool

from .models import write_versions

URI = "s3://models/scorer/v2"
CHART = str(REPO / "charts" / "model-server")


class TablePrometheus:
    """Answers every query with one figure per kind: requests, errors or p99 (a stand-in for the
    real server, which test_live.py runs)."""

    def __init__(self, canary_errors: float = 0.0):
        self.canary_errors = canary_errors
        self.queries: list[str] = []

    def query(self, promql: str, at: float) -> float:
        self.queries.append(promql)
        if promql.startswith("histogram_quantile"):
            return 0.05
        if 'code!~"2.."' in promql:
            return self.canary_errors if 'version="2"' in promql else 0.0
        return 100.0


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    return write_versions(tmp_path_factory.mktemp("models"))


def settings(versions, *args: str) -> RolloutSettings:
    argv = ["--model_dir", str(versions["good"]), "--stable_model_dir", str(versions["stable"]),
            "--model_name", "scorer", "--storage_uri", URI, "--prometheus_url", "http://prometheus.invalid",
            "--duration", "3", "--interval", "1", *args]  # fmt: skip
    return RolloutSettings.from_args(argv, environ={})


def dry_run(versions, *args: str, prometheus=None) -> tuple[int, str]:
    out = io.StringIO()
    code = run(settings(versions, "--dry_run", *args), out, prometheus=prometheus or TablePrometheus(),
               sleep=lambda s: None)  # fmt: skip
    return code, out.getvalue()


def printed_commands(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


# ------------------------------------------------------------------ the commands, as data --


def test_the_three_commands_with_the_defaults(versions):
    commands = release_commands(settings(versions))
    upgrade = ["helm", "upgrade", "scorer", "charts/model-server", "--namespace", "default", "--reuse-values"]
    wait = ["--wait", "--timeout", "600s"]
    no_canary = ["--set", "canary.enabled=false", "--set-string", "canary.storageUri="]
    assert commands.canary == [
        *upgrade, "--set", "canary.enabled=true", "--set", "canary.trafficPercent=10",
        "--set-string", f"canary.storageUri={URI}", *wait,
    ]  # fmt: skip
    assert commands.promote == [*upgrade, "--set-string", f"model.storageUri={URI}", *no_canary, *wait]
    assert commands.rollback == [*upgrade, *no_canary, *wait]


def test_release_namespace_context_chart_version_and_timeout_land_in_every_command(versions):
    commands = release_commands(
        settings(
            versions, "--release", "prod-scorer", "--namespace", "prod", "--kube_context", "ci",
            "--chart", "oci://ghcr.io/acme/charts/model-server", "--chart_version", "0.1.0",
            "--helm", "/opt/helm", "--helm_timeout", "120", "--traffic_percent", "25",
        )
    )  # fmt: skip
    for argv in (commands.canary, commands.promote, commands.rollback):
        assert argv[:11] == [
            "/opt/helm", "--kube-context", "ci", "upgrade", "prod-scorer", "oci://ghcr.io/acme/charts/model-server",
            "--namespace", "prod", "--version", "0.1.0", "--reuse-values",
        ]  # fmt: skip
        assert argv[-3:] == ["--wait", "--timeout", "120s"]
    assert "canary.trafficPercent=25" in commands.canary


def test_a_uri_with_commas_is_escaped_for_helm(versions):
    commands = release_commands(settings(versions, "--storage_uri", "https://host/model?a=1,b=2"))
    assert r"canary.storageUri=https://host/model?a=1\,b=2" in commands.canary


# ----------------------------------------------------------------------- printed by --dry_run --


def test_dry_run_prints_canary_then_promote_when_the_canary_holds(versions):
    code, output = dry_run(versions)
    assert code == 0, output
    commands = release_commands(settings(versions))
    assert printed_commands(output) == [" ".join(commands.canary), " ".join(commands.promote)]
    assert "==> PROMOTED: version 2: 3 of 3 steps judged over 3 s, every one held (exit 0)" in output


def test_dry_run_prints_canary_then_rollback_when_the_canary_fails(versions):
    code, output = dry_run(versions, prometheus=TablePrometheus(canary_errors=20))
    assert code == 1, output
    commands = release_commands(settings(versions))
    assert printed_commands(output) == [" ".join(commands.canary), " ".join(commands.rollback)]
    assert "error rate 20.0% vs stable 0.0%" in output


def test_a_refused_version_prints_no_command(versions):
    out = io.StringIO()
    same_version = settings(versions, "--dry_run", "--model_dir", str(versions["stable"]))
    assert run(same_version, out, prometheus=TablePrometheus(), sleep=lambda s: None) == 3
    assert printed_commands(out.getvalue()) == []
    assert "(nothing deployed) (exit 3)" in out.getvalue()


def test_the_queries_select_each_version_by_its_label(versions):
    prometheus = TablePrometheus()
    dry_run(versions, "--selector", 'namespace="prod",model="scorer"', "--window", "30", prometheus=prometheus)
    assert prometheus.queries[:3] == [
        'sum(increase(model_server_requests_total{namespace="prod",model="scorer",version="1"}[30000ms]))',
        'sum(increase(model_server_requests_total{namespace="prod",model="scorer",version="1",code!~"2.."}[30000ms]))',
        'histogram_quantile(0.99, sum by (le) (rate(model_server_predict_seconds_bucket{namespace="prod",'
        'model="scorer",version="1"}[30000ms])))',
    ]
    assert 'model="scorer",version="2"}' in prometheus.queries[3]


# ------------------------------------------------------------------- run, through a fake helm --


def fake_helm(tmp_path: Path, fail_on: str = "") -> tuple[Path, Path]:
    """An executable that logs its argv as a JSON line and exits 1 when an argument equals FAIL_ON."""
    log = tmp_path / "helm-calls.jsonl"
    script = tmp_path / "helm"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print('Release \"scorer\" has been upgraded.')\n"
        f"sys.exit(1 if {fail_on!r} in sys.argv else 0)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_a_real_run_runs_canary_then_promote(versions, tmp_path):
    helm, log = fake_helm(tmp_path)
    out = io.StringIO()
    code = run(settings(versions, "--helm", str(helm)), out, prometheus=TablePrometheus(), sleep=lambda s: None)
    assert code == 0, out.getvalue()
    commands = release_commands(settings(versions, "--helm", str(helm)))
    assert calls(log) == [commands.canary[1:], commands.promote[1:]]
    assert '  | Release "scorer" has been upgraded.' in out.getvalue()


def test_a_failing_canary_upgrade_is_rolled_back_and_exits_4(versions, tmp_path):
    helm, log = fake_helm(tmp_path, fail_on="canary.enabled=true")
    out = io.StringIO()
    code = run(settings(versions, "--helm", str(helm)), out, prometheus=TablePrometheus(), sleep=lambda s: None)
    assert code == 4, out.getvalue()
    assert [c[-6] for c in calls(log)] == ["canary.trafficPercent=10", "canary.enabled=false"]
    assert f"canary: {helm} exited 1; rolled back (exit 4)" in out.getvalue()


def test_a_failing_rollback_says_to_check_the_release(versions, tmp_path):
    helm, log = fake_helm(tmp_path, fail_on="canary.enabled=false")
    out = io.StringIO()
    code = run(settings(versions, "--helm", str(helm)), out, prometheus=TablePrometheus(canary_errors=50),
               sleep=lambda s: None)  # fmt: skip
    assert code == 4
    assert len(calls(log)) == 2  # canary, then the rollback that failed
    assert "rollback: " in out.getvalue() and f"{helm} exited 1" in out.getvalue()


def test_a_missing_helm_is_named(versions, tmp_path):
    out = io.StringIO()
    missing = str(tmp_path / "no-helm")
    assert run(settings(versions, "--helm", missing), out, prometheus=TablePrometheus(), sleep=lambda s: None) == 4
    assert f"canary: cannot run {missing}: No such file or directory" in out.getvalue()


# ------------------------------------------------------------------------------- the CLI --


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "model_server.rollout", *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, **SUPPORT_ENV, **(env or {})}, timeout=120,
    )  # fmt: skip


def test_help_lists_the_issue_s_flags_and_the_exit_codes():
    result = cli("--help")
    assert result.returncode == 0
    flags = "--allow_schema_change --max_regression --duration --interval --max_error_rate --max_latency_ratio"
    for flag in [*flags.split(), "--dry_run", "--stable_model_dir", "--storage_uri", "--prometheus_url"]:
        assert flag in result.stdout
    assert "--model_repository" not in result.stdout and "--version_policy" not in result.stdout
    assert "3 refused by validation" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing --model_dir, --stable_model_dir, --storage_uri, --prometheus_url (or --validate_only)"),
        (["--validate_only", "--model_dir", "a"], "missing --stable_model_dir"),
        (["--traffic_percent", "100"], "--traffic_percent must be 1-99, got 100"),
        (["--duration", "10", "--interval", "20"], "--interval (20 s) must not exceed --duration (10 s)"),
        (["--max_latency_ratio", "0.5"], "--max_latency_ratio must be at least 1, got 0.5"),
    ],
)
def test_a_flag_that_cannot_be_used_exits_2_naming_it(args, message, capsys):
    full = ["--model_dir", "a", "--stable_model_dir", "b", "--storage_uri", "s3://x", "--prometheus_url", "http://p"]
    with pytest.raises(SystemExit) as exited:
        RolloutSettings.from_args(args if not args or args[0] == "--validate_only" else [*full, *args], environ={})
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_switches_take_no_value_or_one_and_every_flag_is_a_variable(versions):
    environ = {"MODEL_SERVER_STABLE_MODEL_DIR": "/models/stable", "MODEL_SERVER_MAX_REGRESSION": "0.05"}
    parsed = RolloutSettings.from_args(["--validate_only", "--model_dir", "/m", "--dry_run", "false"], environ=environ)
    assert (parsed.validate_only, parsed.dry_run) == (True, False)
    assert (parsed.stable_model_dir, parsed.max_regression) == ("/models/stable", 0.05)
    switch = RolloutSettings.from_args(
        ["--allow_schema_change", "--validate_only", "--model_dir", "/m"], environ=environ
    )
    assert switch.allow_schema_change


# --------------------------------------------------------- the chart, in both KServe modes --

BASE_VALUES = {
    "Standard": ["--set", "model.name=scorer", "--set-string", "model.storageUri=s3://models/scorer/v1"],
    "Knative": [
        "--set", "model.name=scorer", "--set-string", "model.storageUri=s3://models/scorer/v1",
        "--set", "deploymentMode=Knative", "--set", "autoscaling.class=kpa",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def schema_validator() -> SchemaValidator:
    crds = kserve_crds_dir()
    if not list(crds.glob("serving.kserve.io_*.yaml")):
        pytest.skip(f"no KServe CRDs in {crds} (set KSERVE_CRDS_DIR to the official v0.20 CRDs)")
    return SchemaValidator(crds)


def values_of(argv: list[str]) -> list[str]:
    """The --set/--set-string pairs of a helm upgrade, as `helm template` takes them."""
    return [arg for i, arg in enumerate(argv) if i and argv[i - 1] in ("--set", "--set-string")
            for arg in (argv[i - 1], arg)]  # fmt: skip


def render(*value_groups: list[str]) -> dict:
    """The InferenceService with the accumulated values (--reuse-values keeps every earlier one)."""
    args = [arg for group in value_groups for arg in group]
    result = subprocess.run([project_tool("helm"), "template", "scorer", CHART, "--namespace", "models", *args],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    (isvc,) = [d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "InferenceService"]
    return isvc


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_the_commands_render_canary_promotion_and_rollback_in_both_modes(versions, mode, schema_validator):
    commands = release_commands(settings(versions, "--traffic_percent", "20"))
    base = BASE_VALUES[mode]
    canary = render(base, values_of(commands.canary))
    promoted = render(base, values_of(commands.canary), values_of(commands.promote))
    rolled_back = render(base, values_of(commands.canary), values_of(commands.rollback))
    for isvc in (canary, promoted, rolled_back):
        assert schema_validator.validate(isvc) == []

    predictor = canary["spec"]["predictor"]
    if mode == "Standard":  # a second Deployment for v2, the stable predictor keeps v1
        (split,) = canary["spec"]["canary"]
        assert split["trafficPercent"] == 20 and split["predictor"]["model"]["storageUri"] == URI
        assert predictor["model"]["storageUri"] == "s3://models/scorer/v1"
        assert "canaryTrafficPercent" not in predictor
    else:  # v2 is the new revision, with canaryTrafficPercent of the traffic
        assert predictor["canaryTrafficPercent"] == 20 and predictor["model"]["storageUri"] == URI
        assert "canary" not in canary["spec"]
    for isvc, uri in ((promoted, URI), (rolled_back, "s3://models/scorer/v1")):
        assert "canary" not in isvc["spec"] and "canaryTrafficPercent" not in isvc["spec"]["predictor"]
        assert isvc["spec"]["predictor"]["model"]["storageUri"] == uri
