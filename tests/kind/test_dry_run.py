"""scripts/kind-e2e.sh: the plan its --dry-run prints, and its fail-fast checks.

No Kubernetes cluster can run on the machines these tests run on, so the kind
workflow is tested through its dry run, which prints every command of the plan
in order and runs none of them. The real run executes exactly those commands.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kind-e2e.sh"
BASH = "/bin/bash"
TOOLS = ("kind", "kubectl", "helm", "docker", "podman")


def run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})}
    )


def plan(*args: str) -> list[str]:
    """The commands of a dry run, one per line, without the leading '+ '."""
    result = run_script("--dry-run", *args)
    assert result.returncode == 0, result.stderr
    return [line[2:] for line in result.stdout.splitlines() if line.startswith("+ ")]


def index_of(commands: list[str], *parts: str, start: int = 0) -> int:
    """Index of the first command at or after START containing every PART."""
    for i in range(start, len(commands)):
        if all(part in commands[i] for part in parts):
            return i
    raise AssertionError(f"no command with {parts} after #{start} in:\n" + "\n".join(commands))


def assert_in_order(commands: list[str], *steps: tuple[str, ...]) -> None:
    position = -1
    for parts in steps:
        position = index_of(commands, *parts, start=position + 1)


def fake_tools_dir(tmp_path: Path, names: tuple[str, ...]) -> tuple[Path, Path]:
    """A PATH directory with the machine's commands except the cluster tools and
    Python, plus a fake of each NAME that logs its calls and fails when they
    contain $FAKE_FAIL."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    for directory in ("/usr/local/bin", "/usr/bin", "/bin"):
        for real in Path(directory).iterdir() if Path(directory).is_dir() else ():
            if real.name not in (*TOOLS, "python3") and not (bin_dir / real.name).exists():
                (bin_dir / real.name).symlink_to(real)
    for name in names:
        fake = bin_dir / name
        fake.write_text(
            f'#!/bin/sh\necho "{name} $*" >> {calls}\n'
            f'if [ -n "$FAKE_FAIL" ]; then case "{name} $*" in\n'
            f'  *"$FAKE_FAIL"*) echo "{name}: failed" >&2; exit 1;;\nesac; fi\n'
        )
        fake.chmod(0o755)
    return bin_dir, calls


def isolated_env(bin_dir: Path, tmp_path: Path, fail: str = "") -> dict:
    # TOOLS_DIR: the project's .tools/bin (helm, kubectl) must not be found either.
    return {
        "PATH": str(bin_dir),
        "TOOLS_DIR": str(tmp_path / "no-tools"),
        "PYTHON": str(bin_dir / "python3"),
        "FAKE_FAIL": fail,
    }


def test_default_plan_runs_the_eight_steps_in_order():
    commands = plan()
    assert_in_order(
        commands,
        ("kind create cluster", "--config", "scripts/kind/cluster.yaml"),
        ("helm", "upgrade --install metrics-server"),
        ("helm", "upgrade --install cert-manager", "--version v1.17.0"),
        ("helm", "upgrade --install eg oci://docker.io/envoyproxy/gateway-helm"),
        ("helm", "upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd", "--version v0.20.0"),
        (
            "helm",
            "upgrade --install kserve-resources oci://ghcr.io/kserve/charts/kserve-resources",
            "kserve.controller.deploymentMode=Standard",
            "ingressGateway.enableGatewayApi=true",
        ),
        ("kubectl", "wait", "deployment/kserve-controller-manager"),
        ("kubectl", "apply -f", "scripts/kind/gateway.yaml"),
        ("kubectl", "wait", "gateway/kserve-ingress-gateway", "--for=condition=Programmed"),
        ("scripts/build-image.sh", "--tag kind.local/model-server:e2e"),
        ("kind load image-archive",),
        ("helm", "upgrade --install iris", "charts/model-server"),
        ("kubectl", "wait", "inferenceservice/iris", "--for=condition=Ready"),
        ("kubectl", "port-forward", "pod/", "18080:8080", "18081:8081"),
        ("scripts/smoke_test.py check", "--url http://127.0.0.1:18080", "--grpc 127.0.0.1:18081"),
        ("helm", "upgrade iris", "canary.enabled=true"),
        ("scripts/smoke_test.py split", "--expect 2=20"),
        ("helm", "upgrade iris", "canary.enabled=false"),
        ("scripts/smoke_test.py split", "--expect 2=100"),
        ("helm", "rollback iris"),
        ("scripts/smoke_test.py split", "--expect 1=100"),
        ("kubectl", "get", "hpa/iris-predictor"),
        ("scripts/smoke_test.py load",),
        ("kind delete cluster --name model-server-e2e",),
    )
    assert commands[-1] == "kind delete cluster --name model-server-e2e"


def test_every_cluster_command_targets_the_kind_context():
    commands = plan("--cluster-name", "e2e-x")
    cluster_commands = [c for c in commands if c.startswith(("kubectl", "helm"))]
    assert cluster_commands
    for command in cluster_commands:
        assert "--context kind-e2e-x" in command or "--kube-context kind-e2e-x" in command, command


def test_options_land_in_the_commands():
    commands = plan(
        "--cluster-name",
        "demo",
        "--k8s-version",
        "v1.33.4",
        "--kserve-version",
        "v0.20.1",
        "--namespace",
        "ml",
        "--model-name",
        "flowers",
        "--image",
        "kind.local/ms:t1",
        "--cert-manager-version",
        "v1.18.2",
        "--envoy-gateway-version",
        "v1.5.0",
    )
    create = commands[index_of(commands, "kind create cluster")]
    assert "--name demo" in create and "--image kindest/node:v1.33.4" in create
    for chart in ("kserve-crd", "kserve-resources"):
        assert "--version v0.20.1" in commands[index_of(commands, f"upgrade --install {chart} ")]
    assert "kserve.version=v0.20.1" in commands[index_of(commands, "upgrade --install kserve-resources")]
    assert "--version v1.18.2" in commands[index_of(commands, "upgrade --install cert-manager")]
    assert "--version v1.5.0" in commands[index_of(commands, "upgrade --install eg ")]
    assert "--tag kind.local/ms:t1" in commands[index_of(commands, "build-image.sh")]
    install = commands[index_of(commands, "upgrade --install flowers", "charts/model-server")]
    for value in (
        "--namespace ml",
        "image.repository=kind.local/ms",
        "image.tag=t1",
        "model.name=flowers",
        "deploymentMode=Standard",
        "autoscaling.class=hpa",
        "autoscaling.maxReplicas=3",
    ):
        assert value in install, value
    index_of(commands, "kubectl", "wait -n ml inferenceservice/flowers")
    index_of(commands, "get pods -n ml", "serving.kserve.io/inferenceservice=flowers")
    index_of(commands, "get -n ml hpa/flowers-predictor")
    assert commands[-1] == "kind delete cluster --name demo"


def test_node_image_overrides_the_k8s_version():
    image = "kindest/node:v1.34.11@sha256:" + "4" * 64
    commands = plan("--node-image", image, "--k8s-version", "v1.30.0")
    assert f"--image {image}" in commands[index_of(commands, "kind create cluster")]


def test_canary_deploys_version_2_at_20_percent_and_measures_200_requests():
    commands = plan()
    canary = commands[index_of(commands, "helm", "upgrade iris", "canary.enabled=true")]
    assert "--reuse-values" in canary and "canary.trafficPercent=20" in canary
    assert "'canary.extraArgs={--model_dir=/opt/model-server/demo-v2}'" in canary
    promote = commands[index_of(commands, "helm", "upgrade iris", "canary.enabled=false")]
    assert "'model.extraArgs={--model_dir=/opt/model-server/demo-v2}'" in promote
    splits = [c for c in commands if "smoke_test.py split" in c]
    assert len(splits) == 3
    for split in splits:
        assert "--requests 200" in split and "--url http://127.0.0.1:18082" in split and "--host" in split
    assert "--expect 2=20 --tolerance 10" in splits[0]
    # Standard mode: the split is measured through the Envoy Gateway.
    assert_in_order(
        commands,
        ("port-forward -n envoy-gateway-system", "18082:80"),
        ("wait", "--for=condition=CanaryPredictorReady"),
        ("smoke_test.py split",),
    )


def test_canary_percent_and_request_count_are_options():
    commands = plan("--canary-percent", "30", "--requests", "50")
    assert "canary.trafficPercent=30" in commands[index_of(commands, "canary.enabled=true")]
    splits = [c for c in commands if "smoke_test.py split" in c]
    assert all("--requests 50" in split for split in splits)
    assert "--expect 2=30" in splits[0]


def test_keep_suppresses_the_teardown():
    result = run_script("--dry-run", "--keep")
    assert result.returncode == 0, result.stderr
    assert "kind delete cluster" not in "\n".join(line for line in result.stdout.splitlines() if line.startswith("+ "))
    assert "keeping cluster model-server-e2e (--keep)" in result.stdout


def test_summary_table_lists_every_step():
    result = run_script("--dry-run")
    table = result.stdout[result.stdout.index("STEP ") :]
    for row in (
        "1 cluster",
        "2 platform",
        "3 image",
        "4 deploy",
        "5 smoke",
        "6 canary split",
        "6 promote",
        "6 rollback",
        "7 autoscaling",
    ):
        assert re.search(rf"^{row}\s+PLAN\s", table, re.MULTILINE), row
    assert "(dry run: nothing was executed)" in result.stdout


def test_knative_mode_installs_knative_and_uses_kourier():
    commands = plan("--mode", "knative")
    assert_in_order(
        commands,
        ("helm", "upgrade --install knative-operator", "--version v1.21.1"),
        ("kubectl", "apply -f", "scripts/kind/knative-serving.yaml"),
        ("kubectl", "wait", "knativeserving/knative-serving", "--for=condition=Ready"),
        ("helm", "upgrade --install kserve-resources", "deploymentMode=Knative", "disableIstioVirtualHost=true"),
        ("helm", "upgrade --install iris", "deploymentMode=Knative", "autoscaling.class=kpa"),
        ("port-forward -n knative-serving service/kourier 18082:80",),
        ("smoke_test.py split", "--expect 2=20"),
        ("podautoscalers.autoscaling.internal.knative.dev",),
    )
    joined = "\n".join(commands)
    assert "envoyproxy" not in joined and "gateway.yaml" not in joined
    # Knative canaries are revisions (canaryTrafficPercent), not spec.canary.
    assert "CanaryPredictorReady" not in joined


def test_standard_mode_installs_no_knative():
    joined = "\n".join(plan())
    assert "knative" not in joined.lower()


@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_kustomize_option_applies_the_overlays(mode):
    commands = plan("--deploy", "kustomize", "--mode", mode)
    overlays = REPO / "scripts" / "kind" / "overlays"
    assert_in_order(
        commands,
        ("kubectl", "create namespace model-server-e2e"),
        ("kubectl", "apply -n model-server-e2e -k", f"{overlays}/{mode}"),
        ("wait", "inferenceservice/iris", "condition=Ready"),
        ("smoke_test.py check",),
        ("kubectl", "apply -n model-server-e2e -k", f"{overlays}/canary-{mode}"),
        ("smoke_test.py split", "--expect 2=20"),
        ("kubectl", "apply -n model-server-e2e -k", f"{overlays}/promoted-{mode}"),
        ("smoke_test.py split", "--expect 2=100"),
        ("kubectl", "apply -n model-server-e2e -k", f"{overlays}/{mode}"),
        ("smoke_test.py split", "--expect 1=100"),
    )
    assert not [c for c in commands if "charts/model-server" in c]


def test_kustomize_option_refuses_values_the_overlays_fix():
    result = run_script("--dry-run", "--deploy", "kustomize", "--canary-percent", "30")
    assert result.returncode == 2
    assert "scripts/kind/overlays" in result.stderr


def test_podman_engine_runs_kind_with_the_podman_provider():
    commands = plan("--engine", "podman")
    kind_commands = [c for c in commands if " kind " in f" {c} "]
    assert kind_commands and all(c.startswith("env KIND_EXPERIMENTAL_PROVIDER=podman kind ") for c in kind_commands)
    assert "--engine podman" in commands[index_of(commands, "build-image.sh")]
    index_of(commands, "podman save -o")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "serverless"], "--mode must be standard or knative"),
        (["--deploy", "kubectl"], "--deploy must be helm or kustomize"),
        (["--engine", "nerdctl"], "--engine must be docker or podman"),
        (["--canary-percent", "100"], "--canary-percent must be 1-99"),
        (["--requests", "many"], "expected a whole number"),
        (["--no-such-option"], "unknown option: --no-such-option"),
    ],
)
def test_bad_options_are_usage_errors(args, message):
    result = run_script("--dry-run", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_dry_run_needs_and_runs_none_of_the_tools(tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, (*TOOLS, "python3"))
    result = run_script("--dry-run", env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "kind delete cluster" in result.stdout
    assert not calls.exists(), calls.read_text()


def test_dry_run_works_without_any_of_the_tools_installed(tmp_path):
    bin_dir, _ = fake_tools_dir(tmp_path, ())
    result = run_script("--dry-run", "--mode", "knative", env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 0, result.stderr


def test_a_missing_kind_fails_fast_and_names_it(tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, ("kubectl", "helm", "docker", "python3"))
    result = run_script(env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 1
    assert "missing required tool(s): kind" in result.stderr
    assert "docker" not in result.stderr
    assert not calls.exists(), "nothing may run before the tool check:\n" + calls.read_text()


def test_every_missing_tool_is_named_with_the_podman_hint(tmp_path):
    bin_dir, _ = fake_tools_dir(tmp_path, ("python3",))
    result = run_script(env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 1
    assert "missing required tool(s): kind kubectl helm docker (or use --engine podman)" in result.stderr


def test_a_missing_podman_is_named_when_chosen(tmp_path):
    bin_dir, _ = fake_tools_dir(tmp_path, ("kind", "kubectl", "helm", "docker", "python3"))
    result = run_script("--engine", "podman", env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 1
    assert "missing required tool(s): podman" in result.stderr


def test_a_python_without_the_smoke_client_packages_fails_fast(tmp_path):
    bin_dir, _ = fake_tools_dir(tmp_path, ("kind", "kubectl", "helm", "docker"))
    python = bin_dir / "python3"
    python.write_text("#!/bin/sh\nexit 1\n")  # as a Python lacking httpx would answer the import check
    python.chmod(0o755)
    result = run_script(env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 1
    assert "cannot import httpx and tritonclient.grpc" in result.stderr


def help_options() -> list[str]:
    text = run_script("--help").stdout
    return sorted(set(re.findall(r"^\s+(--[a-z0-9-]+)", text, re.MULTILINE)))


def test_help_documents_every_option_the_script_parses():
    source = SCRIPT.read_text()
    parsed = set(re.findall(r"^\s+(--[a-z0-9-]+)\)", source, re.MULTILINE))
    assert parsed and parsed == set(help_options())


def test_readme_kind_section_documents_every_option():
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^## Local kind cluster\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    assert match, "README.md has no '## Local kind cluster' section"
    section = match.group(1)
    missing = [option for option in help_options() if f"`{option}" not in section]
    assert not missing, f"README's kind section lacks {missing}"
    assert "make kind-e2e" in section and "--dry-run" in section


# A real run up to a failing step, with fakes that log their calls in place of
# kind/kubectl/helm/docker (no cluster can run here).


def test_a_failing_step_stops_the_run_reports_it_and_tears_down(tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, (*TOOLS, "python3"))
    result = run_script(env=isolated_env(bin_dir, tmp_path, fail="kind create cluster"))
    assert result.returncode == 1
    assert (
        "FAILED at step 1 cluster: command failed (exit 1): kind create cluster --name model-server-e2e"
        in result.stderr
    )
    assert re.search(r"^1 cluster\s+FAIL\s+command failed", result.stdout, re.MULTILINE)
    log = calls.read_text()
    assert "helm" not in log, "no step may run after the failing one"
    assert log.splitlines()[-1] == "kind delete cluster --name model-server-e2e"


def test_keep_leaves_the_cluster_after_a_failure(tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, (*TOOLS, "python3"))
    result = run_script("--keep", env=isolated_env(bin_dir, tmp_path, fail="kind create cluster"))
    assert result.returncode == 1
    assert "kind delete" not in calls.read_text()


def test_a_wait_timeout_describes_the_failing_resource(tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, (*TOOLS, "python3"))
    result = run_script(env=isolated_env(bin_dir, tmp_path, fail="wait -n kserve deployment/kserve-controller-manager"))
    assert result.returncode == 1
    assert (
        "FAILED at step 2 platform: deployment/kserve-controller-manager did not reach condition=Available within 300s"
        in (result.stderr)
    )
    assert "kubectl --context kind-model-server-e2e describe -n kserve deployment/kserve-controller-manager" in (
        calls.read_text()
    )


def test_port_forwards_are_stopped_when_a_step_fails(tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, ("kind", "helm", "docker", "python3"))
    pids = tmp_path / "port-forward.pids"
    # A kubectl whose port-forward reports its ports the way kubectl does, then stays up.
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(
        f'#!/bin/sh\necho "kubectl $*" >> {calls}\n'
        'case "$*" in *port-forward*)\n'
        '  for a in "$@"; do case "$a" in *:*) echo "Forwarding from 127.0.0.1:${a%%:*} -> ${a#*:}";; esac; done\n'
        f"  echo $$ >> {pids}; exec sleep 300;;\nesac\n"
    )
    kubectl.chmod(0o755)
    result = run_script("--keep", env=isolated_env(bin_dir, tmp_path, fail="smoke_test.py check"))
    assert result.returncode == 1
    assert "FAILED at step 5 smoke: command failed (exit 1):" in result.stderr
    (forwarder,) = map(int, pids.read_text().split())
    alive = Path(f"/proc/{forwarder}").exists()
    if alive:
        os.kill(forwarder, signal.SIGTERM)  # do not leave it behind when the test fails
    assert not alive, "the exit trap must stop kubectl port-forward"
