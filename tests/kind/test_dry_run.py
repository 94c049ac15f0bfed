"""scripts/kind_e2e.py: its plan, its fail-fast checks and its teardown.

No Kubernetes cluster can run on the machines these tests run on, so the plan is
checked as data: `kind_e2e.plan(options)` is every command a run executes, in
order, as argv lists, built by a dry run that runs none of them. Real runs up to
a failing step use fakes that log their calls in place of kind/kubectl/helm/docker;
a few tests run the real CLI.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import kind_e2e
import pytest
from kind_e2e import Command, Options, Step, StepFailed, UsageError, parse_args

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "kind_e2e.py"
TOOLS = ("kind", "kubectl", "helm", "docker", "podman")
DEMO_V2 = "{--model_dir=/opt/model-server/demo-v2}"


def plan(*args: str) -> list[list[str]]:
    return [list(command.argv) for command in kind_e2e.plan(parse_args(args))]


def value(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{flag} not in {argv}"
    return argv[argv.index(flag) + 1]


def helm_sets(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--set"]


def index_of(commands: list[list[str]], *args: str, start: int = 0) -> int:
    """Index of the first command at or after START whose argv holds every ARG."""
    for i in range(start, len(commands)):
        if all(arg in commands[i] for arg in args):
            return i
    raise AssertionError(f"no command with {args} after #{start} in:\n" + "\n".join(map(" ".join, commands)))


def assert_in_order(commands: list[list[str]], *steps: tuple[str, ...]) -> None:
    position = -1
    for args in steps:
        position = index_of(commands, *args, start=position + 1)


def script_path(*parts: str) -> str:
    return str(REPO.joinpath(*parts))


# ------------------------------------------------------------- the plan --


def test_default_plan_runs_the_eight_steps_in_order():
    commands = plan()
    context = ["--kube-context", "kind-model-server-e2e"]
    assert_in_order(
        commands,
        ("kind", "create", "cluster", script_path("scripts", "kind", "cluster.yaml")),
        ("helm", "upgrade", "--install", "metrics-server"),
        ("helm", "upgrade", "--install", "cert-manager", "v1.17.0"),
        ("helm", "upgrade", "--install", "eg", "oci://docker.io/envoyproxy/gateway-helm"),
        ("helm", "upgrade", "--install", "kserve-crd", "oci://ghcr.io/kserve/charts/kserve-crd", "v0.20.0"),
        ("helm", "upgrade", "--install", "kserve-resources", "oci://ghcr.io/kserve/charts/kserve-resources"),
        ("kubectl", "wait", "deployment/kserve-controller-manager", "--for=condition=Available"),
        ("kubectl", "apply", "-f", script_path("scripts", "kind", "gateway.yaml")),
        ("kubectl", "wait", "gateway/kserve-ingress-gateway", "--for=condition=Programmed"),
        (script_path("scripts", "build-image.sh"), "kind.local/model-server:e2e"),
        ("docker", "save"),
        ("kind", "load", "image-archive"),
        ("helm", "upgrade", "--install", "iris", script_path("charts", "model-server")),
        ("kubectl", "wait", "inferenceservice/iris", "--for=condition=Ready"),
        ("kubectl", "port-forward", "18080:8080", "18081:8081"),
        (script_path("scripts", "smoke_test.py"), "check", "http://127.0.0.1:18080", "127.0.0.1:18081"),
        ("helm", "upgrade", "iris", "canary.enabled=true"),
        (script_path("scripts", "smoke_test.py"), "split", "2=20"),
        ("helm", "upgrade", "iris", "canary.enabled=false"),
        (script_path("scripts", "smoke_test.py"), "split", "2=100"),
        ("helm", "rollback", "iris"),
        (script_path("scripts", "smoke_test.py"), "split", "1=100"),
        ("kubectl", "get", "hpa/iris-predictor"),
        (script_path("scripts", "smoke_test.py"), "load"),
        ("kind", "delete", "cluster"),
    )
    resources = commands[index_of(commands, "kserve-resources")]
    assert {
        "kserve.controller.deploymentMode=Standard",
        "kserve.controller.gateway.ingressGateway.enableGatewayApi=true",
    } <= set(helm_sets(resources))
    assert resources[:3] == ["helm", *context]
    assert commands[-1] == ["kind", "delete", "cluster", "--name", "model-server-e2e"]


def test_steps_are_data_with_their_summary_names():
    assert [step.name for step in kind_e2e.STEPS] == [
        "cluster",
        "platform",
        "image",
        "deploy",
        "smoke",
        "canary",
        "autoscaling",
    ]
    run = kind_e2e.dry_run(Options())
    headings = re.findall(r"^==> Step (\d)/8: ", run.out.getvalue(), re.MULTILINE)
    assert headings == [str(n) for n in range(1, 9)]


def test_every_cluster_command_targets_the_kind_context():
    commands = plan("--cluster-name", "e2e-x")
    cluster_commands = [c for c in commands if c[0] in ("kubectl", "helm")]
    assert cluster_commands
    for command in cluster_commands:
        assert command[1:3] in (["--context", "kind-e2e-x"], ["--kube-context", "kind-e2e-x"]), command


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
        "--metrics-server-version",
        "3.12.0",
        "--timeout",
        "42",
        "--local-port",
        "19000",
        "--load-seconds",
        "30",
    )
    create = commands[index_of(commands, "kind", "create", "cluster")]
    assert value(create, "--name") == "demo" and value(create, "--image") == "kindest/node:v1.33.4"
    assert value(create, "--wait") == "42s"
    for chart in ("kserve-crd", "kserve-resources"):
        assert value(commands[index_of(commands, "--install", chart)], "--version") == "v0.20.1"
    assert "kserve.version=v0.20.1" in helm_sets(commands[index_of(commands, "--install", "kserve-resources")])
    assert value(commands[index_of(commands, "--install", "cert-manager")], "--version") == "v1.18.2"
    assert value(commands[index_of(commands, "--install", "eg")], "--version") == "v1.5.0"
    assert value(commands[index_of(commands, "--install", "metrics-server")], "--version") == "3.12.0"
    assert value(commands[index_of(commands, script_path("scripts", "build-image.sh"))], "--tag") == "kind.local/ms:t1"
    install = commands[index_of(commands, "--install", "flowers", script_path("charts", "model-server"))]
    assert value(install, "--namespace") == "ml"
    assert {
        "image.repository=kind.local/ms",
        "image.tag=t1",
        "model.name=flowers",
        "deploymentMode=Standard",
        "autoscaling.class=hpa",
        "autoscaling.maxReplicas=3",
    } <= set(helm_sets(install))
    helm_installs = [c for c in commands if c[0] == "helm" and "upgrade" in c]
    assert helm_installs and all(value(c, "--timeout") == "42s" for c in helm_installs)
    waits = [c for c in commands if "wait" in c and c[0] == "kubectl"]
    assert waits and all("--timeout=42s" in c for c in waits)
    index_of(commands, "wait", "-n", "ml", "inferenceservice/flowers")
    pods = commands[index_of(commands, "get", "pods", "-n", "ml")]
    assert value(pods, "-l") == "serving.kserve.io/inferenceservice=flowers,component=predictor"
    index_of(commands, "get", "-n", "ml", "hpa/flowers-predictor")
    index_of(commands, "port-forward", "19000:8080", "19001:8081")
    index_of(commands, "port-forward", "19002:80")
    load = commands[index_of(commands, "load", "--concurrency")]
    assert value(load, "--seconds") == "30" and value(load, "--url") == "http://127.0.0.1:19002"
    assert commands[-1] == ["kind", "delete", "cluster", "--name", "demo"]


def test_node_image_overrides_the_k8s_version():
    image = "kindest/node:v1.34.11@sha256:" + "4" * 64
    commands = plan("--node-image", image, "--k8s-version", "v1.30.0")
    assert value(commands[index_of(commands, "kind", "create", "cluster")], "--image") == image


def test_canary_deploys_version_2_at_20_percent_and_measures_200_requests():
    commands = plan()
    canary = commands[index_of(commands, "helm", "upgrade", "iris", "canary.enabled=true")]
    assert "--reuse-values" in canary
    assert {"canary.trafficPercent=20", f"canary.extraArgs={DEMO_V2}"} <= set(helm_sets(canary))
    # The braces are shown quoted, as a reader would have to type them.
    assert f"'canary.extraArgs={DEMO_V2}'" in str(Command(tuple(canary)))
    promote = commands[index_of(commands, "helm", "upgrade", "iris", "canary.enabled=false")]
    assert f"model.extraArgs={DEMO_V2}" in helm_sets(promote)
    splits = [c for c in commands if "split" in c]
    assert len(splits) == 3
    for split in splits:
        assert value(split, "--requests") == "200" and value(split, "--url") == "http://127.0.0.1:18082"
        assert value(split, "--host") == "<isvc-host>"  # from the InferenceService's status.url
    assert (value(splits[0], "--expect"), value(splits[0], "--tolerance")) == ("2=20", str(kind_e2e.CANARY_TOLERANCE))
    assert [value(s, "--tolerance") for s in splits[1:]] == ["0", "0"]
    # Standard mode: the split is measured through the Envoy Gateway.
    assert_in_order(
        commands,
        ("get", "services", "-n", "envoy-gateway-system"),
        ("port-forward", "-n", "envoy-gateway-system", "service/<envoy-service>", "18082:80"),
        ("wait", "--for=condition=CanaryPredictorReady"),
        ("split",),
    )


def test_rollback_returns_to_the_revision_before_the_canary():
    commands = plan("--namespace", "ml")
    history = commands[index_of(commands, "helm", "history", "iris")]
    assert value(history, "--max") == "1" and value(history, "-o") == "json"
    rollback = commands[index_of(commands, "helm", "rollback", "iris")]
    assert rollback[rollback.index("iris") + 1] == "1"  # the dry run's placeholder revision
    assert value(rollback, "--namespace") == "ml"


def test_canary_percent_and_request_count_are_options():
    commands = plan("--canary-percent", "30", "--requests", "50")
    assert "canary.trafficPercent=30" in helm_sets(commands[index_of(commands, "canary.enabled=true")])
    splits = [c for c in commands if "split" in c]
    assert all(value(split, "--requests") == "50" for split in splits)
    assert value(splits[0], "--expect") == "2=30"


def test_cluster_answers_are_read_as_json():
    queries = [c for c in plan() + plan("--mode", "knative") if c[0] == "kubectl" and "get" in c]
    assert queries and all(value(c, "-o") == "json" for c in queries)
    (history,) = [c for c in plan() if "history" in c]
    assert value(history, "-o") == "json"


def test_json_fields_are_read_by_path_and_a_missing_one_is_named():
    pods = {"items": [{"metadata": {"name": "iris-predictor-0"}}]}
    assert kind_e2e.json_field(pods, ("items", 0, "metadata", "name")) == "iris-predictor-0"
    with pytest.raises(StepFailed, match=re.escape(".items[0].metadata.name")):
        kind_e2e.json_field({"items": []}, ("items", 0, "metadata", "name"))
    assert kind_e2e.json_field({"status": {}}, ("status", "desiredReplicas"), default=0) == 0
    assert kind_e2e.json_field({"status": {"desiredReplicas": None}}, ("status", "desiredReplicas"), default=0) == 0


def test_keep_suppresses_the_teardown():
    run = kind_e2e.dry_run(parse_args(["--keep"]))
    assert not [c for c in run.commands if c.argv[:2] == ("kind", "delete")]
    assert "keeping cluster model-server-e2e (--keep); delete it with: kind delete cluster" in run.out.getvalue()
    assert run.commands[-1].argv[:2] != ("kind", "delete")


def test_summary_table_lists_every_step():
    run = kind_e2e.dry_run(Options())
    output = run.out.getvalue()
    table = output[output.index("STEP ") :]
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
    assert len(run.summary) == 9 and all(row in table for row in run.summary)
    assert output.rstrip().endswith("(dry run: nothing was executed)")


def test_knative_mode_installs_knative_and_uses_kourier():
    commands = plan("--mode", "knative")
    assert_in_order(
        commands,
        ("helm", "upgrade", "--install", "knative-operator", "v1.21.1"),
        ("kubectl", "apply", "-f", script_path("scripts", "kind", "knative-serving.yaml")),
        ("kubectl", "wait", "knativeserving/knative-serving", "--for=condition=Ready"),
        ("helm", "upgrade", "--install", "kserve-resources"),
        ("helm", "upgrade", "--install", "iris"),
        ("port-forward", "-n", "knative-serving", "service/kourier", "18082:80"),
        ("split", "2=20"),
        ("kubectl", "get", "podautoscalers.autoscaling.internal.knative.dev/<revision>"),
    )
    resources = helm_sets(commands[index_of(commands, "--install", "kserve-resources")])
    assert {
        "kserve.controller.deploymentMode=Knative",
        "kserve.controller.gateway.disableIstioVirtualHost=true",
    } <= set(resources)
    install = helm_sets(commands[index_of(commands, "--install", "iris")])
    assert {"deploymentMode=Knative", "autoscaling.class=kpa"} <= set(install)
    joined = "\n".join(map(" ".join, commands))
    assert "envoyproxy" not in joined and "gateway.yaml" not in joined
    # Knative canaries are revisions (canaryTrafficPercent), not spec.canary.
    assert "CanaryPredictorReady" not in joined


def test_standard_mode_installs_no_knative():
    joined = "\n".join(map(" ".join, plan()))
    assert "knative" not in joined.lower()


@pytest.mark.parametrize("mode", ["standard", "knative"])
def test_kustomize_option_applies_the_overlays(mode):
    commands = plan("--deploy", "kustomize", "--mode", mode)
    overlays = REPO / "scripts" / "kind" / "overlays"
    apply = ("kubectl", "apply", "-n", "model-server-e2e", "-k")
    assert_in_order(
        commands,
        ("kubectl", "create", "namespace", "model-server-e2e"),
        (*apply, f"{overlays}/{mode}"),
        ("wait", "inferenceservice/iris", "--for=condition=Ready"),
        ("check",),
        (*apply, f"{overlays}/canary-{mode}"),
        ("split", "2=20"),
        (*apply, f"{overlays}/promoted-{mode}"),
        ("split", "2=100"),
        (*apply, f"{overlays}/{mode}"),
        ("split", "1=100"),
    )
    assert not [c for c in commands if script_path("charts", "model-server") in c or "history" in c]
    assert all(Path(c[-1]).is_dir() for c in commands if c[:1] == ["kubectl"] and "-k" in c)


def test_kustomize_option_refuses_values_the_overlays_fix():
    for args in (["--canary-percent", "30"], ["--model-name", "flowers"], ["--image", "kind.local/ms:t1"]):
        with pytest.raises(UsageError, match="scripts/kind/overlays"):
            parse_args(["--deploy", "kustomize", *args])


def test_podman_engine_runs_kind_with_the_podman_provider():
    commands = plan("--engine", "podman")
    kind_commands = [c for c in commands if "kind" in c]
    assert kind_commands and all(c[:3] == ["env", "KIND_EXPERIMENTAL_PROVIDER=podman", "kind"] for c in kind_commands)
    assert value(commands[index_of(commands, script_path("scripts", "build-image.sh"))], "--engine") == "podman"
    save = commands[index_of(commands, "save")]
    assert save[0] == "podman"
    assert value(save, "-o") == value(commands[index_of(commands, "image-archive")], "image-archive")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "serverless"], "--mode must be standard or knative, not 'serverless'"),
        (["--deploy", "kubectl"], "--deploy must be helm or kustomize"),
        (["--engine", "nerdctl"], "--engine must be docker or podman"),
        (["--canary-percent", "100"], "--canary-percent must be 1-99"),
        (["--requests", "many"], "expected a whole number, got 'many'"),
        (["--timeout", "-5"], "expected a whole number"),
        (["--cluster-name"], "--cluster-name needs a value"),
        (["--no-such-option"], "unknown option: --no-such-option"),
    ],
)
def test_bad_options_are_usage_errors(args, message, capsys):
    assert kind_e2e.main(["--dry-run", *args]) == 2
    err = capsys.readouterr().err
    assert f"kind-e2e: {message}" in err
    assert ("Usage: scripts/kind_e2e.py" in err) == (message.startswith("unknown option"))


def help_options() -> list[str]:
    return sorted(set(re.findall(r"^\s+(--[a-z0-9-]+)", kind_e2e.usage(), re.MULTILINE)))


def test_help_documents_every_option_and_its_default():
    fields = {f.name: f.default for f in kind_e2e.dataclasses.fields(Options)}
    assert help_options() == sorted(f"--{name.replace('_', '-')}" for name in fields)
    for flag, placeholder, _ in kind_e2e.OPTIONS:
        name = kind_e2e.attribute(flag)
        default = fields[name]
        if placeholder and default != "":
            assert re.search(rf"^  {flag} .*(\n {{31}}.*)*\[{re.escape(str(default))}\]$", kind_e2e.usage(), re.M), flag
        # Each option parses into its field.
        if not placeholder:
            args, expected = [flag], True
        elif isinstance(default, int):
            args, expected = [flag, str(default + 1)], default + 1
        elif "|" in placeholder:
            expected = next(choice for choice in placeholder.split("|") if choice != default)
            args = [flag, expected]
        else:
            args, expected = [flag, "x"], "x"
        assert getattr(parse_args(args), name) == expected, flag


def test_docs_kind_page_documents_every_option():
    page = (REPO / "docs" / "kind.md").read_text()
    missing = [option for option in help_options() if f"`{option}" not in page]
    assert not missing, f"docs/kind.md lacks {missing}"
    assert "make kind-e2e" in page and "--dry-run" in page and "scripts/kind_e2e.py" in page
    # The table's defaults are the script's.
    rows = dict(re.findall(r"^\| `(--[a-z0-9-]+)[^`]*` \|([^|]*)\|", page, re.MULTILINE))
    defaults = Options()
    for option in help_options():
        default = getattr(defaults, kind_e2e.attribute(option))
        assert rows[option].strip(" `") == ("" if isinstance(default, bool) else str(default)), option


def test_poll_asks_until_done_or_out_of_time():
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    answers = iter([False, False, True])
    assert kind_e2e.poll(lambda: next(answers), every=5, seconds=60, sleep=sleep, clock=lambda: now[0])
    assert now[0] == 15  # it sleeps before each question

    now[0] = 0.0
    asked = []
    assert not kind_e2e.poll(
        lambda: asked.append(now[0]) or False, every=10, seconds=30, sleep=sleep, clock=lambda: now[0]
    )
    assert asked == [10, 20, 30]


def split_client(tmp_path: Path, *answers: tuple[int, str]) -> Path:
    """A stand-in for `smoke_test.py split` giving ANSWERS (status, output) in turn, then the last one again."""
    for i, (status, output) in enumerate(answers, 1):
        (tmp_path / f"split.{i}.out").write_text(output)
        (tmp_path / f"split.{i}.status").write_text(str(status))
    script = tmp_path / "split"
    script.write_text(
        f"#!/bin/sh\ncd {tmp_path}\nn=$(( $(cat split.count 2>/dev/null || echo 0) + 1 )); echo $n > split.count\n"
        f"[ $n -gt {len(answers)} ] && n={len(answers)}\ncat split.$n.out; exit $(cat split.$n.status)\n"
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def instant_poll(monkeypatch):
    """poll() on a clock that moves only when it sleeps."""
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    real = kind_e2e.poll
    monkeypatch.setattr(kind_e2e, "poll", lambda *a, **kw: real(*a, **kw, sleep=sleep, clock=lambda: now[0]))
    return now


def test_a_real_split_is_measured_again_while_the_share_is_off(tmp_path, instant_poll, capsys):
    off = (kind_e2e.SPLIT_MISMATCH, "model_version 1: 200/200 (100.0%)\n")
    on = (0, "model_version 1: 160/200 (80.0%)\nmodel_version 2: 40/200 (20.0%)\nsplit ok\n")
    run = kind_e2e.Run(Options(), python="unused")
    run.smoke = [str(split_client(tmp_path, off, off, on))]
    assert kind_e2e.measure_split(run, "2=20", 10, 60) == 0
    assert run.split_report == "model_version 1: 160/200 (80.0%) model_version 2: 40/200 (20.0%) "
    out = capsys.readouterr().out
    assert out.count("kind-e2e: share not there yet: model_version 1: 200/200 (100.0%) ") == 2
    assert out.endswith("split ok\n") and instant_poll[0] == 10


def test_a_real_split_that_stays_off_gives_up_after_its_time(tmp_path, instant_poll):
    run = kind_e2e.Run(Options(), python="unused")
    run.smoke = [str(split_client(tmp_path, (kind_e2e.SPLIT_MISMATCH, "model_version 1: 200/200\n")))]
    assert kind_e2e.measure_split(run, "2=20", 10, 60) == kind_e2e.SPLIT_MISMATCH
    assert instant_poll[0] == 60
    assert (tmp_path / "split.count").read_text().strip() == "13"  # once, then every 5s for 60s


# ------------------------------------------------- the CLI (subprocesses) --


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


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
    )


@pytest.mark.parametrize(
    "args", [[], ["--mode", "knative"], ["--deploy", "kustomize"], ["--engine", "podman"], ["--keep"]], ids=str
)
def test_cli_dry_run_prints_the_plan_and_runs_none_of_the_tools(args, tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, (*TOOLS, "python3"))
    env = isolated_env(bin_dir, tmp_path)
    result = run_cli("--dry-run", *args, env=env)
    assert result.returncode == 0, result.stderr
    expected = kind_e2e.dry_run(parse_args(args), python=env["PYTHON"])
    assert [line for line in result.stdout.splitlines() if line.startswith("+ ")] == list(map(str, expected.commands))
    assert result.stdout == expected.out.getvalue()
    assert not calls.exists(), calls.read_text()


def test_cli_dry_run_works_without_any_of_the_tools_installed(tmp_path):
    bin_dir, _ = fake_tools_dir(tmp_path, ())
    result = run_cli("--dry-run", "--mode", "knative", env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "+ kind delete cluster --name model-server-e2e" in result.stdout


def test_cli_help(tmp_path):
    result = run_cli("--help", env={})
    assert result.returncode == 0 and result.stdout == kind_e2e.usage()
    assert result.stdout.startswith("Usage: scripts/kind_e2e.py [options]")


def test_cli_a_missing_kind_fails_fast_and_names_it(tmp_path):
    bin_dir, calls = fake_tools_dir(tmp_path, ("kubectl", "helm", "docker", "python3"))
    result = run_cli(env=isolated_env(bin_dir, tmp_path))
    assert result.returncode == 1
    assert "kind-e2e: missing required tool(s): kind\n" in result.stderr
    assert "docker" not in result.stderr
    assert not calls.exists(), "nothing may run before the tool check:\n" + calls.read_text()


# ------------------------------------ tool checks and real runs with fakes --


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Put fakes of every tool first on PATH for an in-process run; returns (bin_dir, calls, fail)."""
    bin_dir, calls = fake_tools_dir(tmp_path, (*TOOLS, "python3"))
    for name, setting in isolated_env(bin_dir, tmp_path).items():
        monkeypatch.setenv(name, setting)

    def fail(text: str) -> None:
        monkeypatch.setenv("FAKE_FAIL", text)

    return bin_dir, calls, fail


def test_every_missing_tool_is_named_with_the_podman_hint(fakes):
    bin_dir, _, _ = fakes
    for tool in TOOLS:
        (bin_dir / tool).unlink()
    assert kind_e2e.check_tools("docker", str(bin_dir / "python3")) == (
        "missing required tool(s): kind kubectl helm docker (or use --engine podman)"
    )


def test_a_missing_podman_is_named_when_chosen(fakes):
    bin_dir, _, _ = fakes
    (bin_dir / "podman").unlink()
    assert kind_e2e.check_tools("podman", str(bin_dir / "python3")) == "missing required tool(s): podman"
    assert kind_e2e.check_tools("docker", str(bin_dir / "python3")) is None


def test_a_python_without_the_smoke_client_packages_fails_fast(fakes, capfd):
    bin_dir, calls, _ = fakes
    python = bin_dir / "python3"
    python.write_text("#!/bin/sh\nexit 1\n")  # as a Python lacking httpx would answer the import check
    assert "cannot import httpx and tritonclient.grpc" in kind_e2e.check_tools("docker", str(python))
    assert "cannot import httpx" in kind_e2e.check_tools("docker", str(bin_dir / "no-such-python"))
    assert kind_e2e.main([]) == 1
    assert "run 'make venv' or set PYTHON" in capfd.readouterr().err
    assert not calls.exists()


def test_a_failing_step_stops_the_run_reports_it_and_tears_down(fakes, capfd):
    _, calls, fail = fakes
    fail("kind create cluster")
    assert kind_e2e.main([]) == 1
    out, err = capfd.readouterr()
    assert (
        "kind-e2e: FAILED at step 1 cluster: command failed (exit 1): kind create cluster --name model-server-e2e"
        in err
    )
    assert re.search(r"^1 cluster\s+FAIL\s+command failed", out, re.MULTILINE)
    assert not re.search(r"^2 platform", out, re.MULTILINE)
    log = calls.read_text()
    assert "helm" not in log, "no step may run after the failing one"
    assert log.splitlines()[-1] == "kind delete cluster --name model-server-e2e"


def test_an_existing_cluster_is_reused(fakes, capfd):
    bin_dir, calls, fail = fakes
    (bin_dir / "kind").write_text(f'#!/bin/sh\necho "kind $*" >> {calls}\n[ "$1" = get ] && echo model-server-e2e\n')
    fail("helm")  # stop at step 2
    assert kind_e2e.main(["--keep"]) == 1
    assert "reusing the existing kind cluster model-server-e2e" in capfd.readouterr().out
    assert "kind create" not in calls.read_text()


def test_keep_leaves_the_cluster_after_a_failure(fakes):
    _, calls, fail = fakes
    fail("kind create cluster")
    assert kind_e2e.main(["--keep"]) == 1
    assert "kind delete" not in calls.read_text()


def test_a_wait_timeout_describes_the_failing_resource(fakes, capfd):
    _, calls, fail = fakes
    fail("wait -n kserve deployment/kserve-controller-manager")
    assert kind_e2e.main([]) == 1
    err = capfd.readouterr().err
    assert (
        "FAILED at step 2 platform: deployment/kserve-controller-manager did not reach condition=Available within 300s"
        in err
    )
    assert "---- kubectl describe deployment/kserve-controller-manager -n kserve ----" in err
    assert "kubectl --context kind-model-server-e2e describe -n kserve deployment/kserve-controller-manager" in (
        calls.read_text()
    )


def forwarding_kubectl(bin_dir: Path, calls: Path, pids: Path) -> None:
    """A kubectl that answers `get pods` with one pod, and whose port-forward reports its
    ports the way kubectl does, then stays up."""
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(
        f'#!/bin/sh\necho "kubectl $*" >> {calls}\n'
        'case "$*" in\n'
        """  *"get pods"*) echo '{"kind": "List", "items": [{"metadata": {"name": "iris-predictor-0"}}]}';;\n"""
        "  *port-forward*)\n"
        '    for a in "$@"; do case "$a" in *:*) echo "Forwarding from 127.0.0.1:${a%%:*} -> ${a#*:}";; esac; done\n'
        f"    echo $$ >> {pids}; exec sleep 300;;\nesac\n"
    )
    kubectl.chmod(0o755)


def alive(pid: int) -> bool:
    if not Path(f"/proc/{pid}").exists():
        return False
    os.kill(pid, signal.SIGTERM)  # do not leave it behind when the test fails
    return True


def test_port_forwards_are_stopped_when_a_step_fails(fakes, tmp_path, capfd):
    bin_dir, calls, fail = fakes
    pids = tmp_path / "port-forward.pids"
    forwarding_kubectl(bin_dir, calls, pids)
    fail("smoke_test.py check")
    assert kind_e2e.main(["--keep"]) == 1
    assert "FAILED at step 5 smoke: command failed (exit 1):" in capfd.readouterr().err
    # The pod name came from the JSON answer of `kubectl get pods`.
    assert "port-forward -n model-server-e2e pod/iris-predictor-0 18080:8080 18081:8081" in calls.read_text()
    (forwarder,) = map(int, pids.read_text().split())
    assert not alive(forwarder), "the teardown must stop kubectl port-forward"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_stops_the_port_forwards_and_tears_down(signum, fakes, tmp_path, capfd, monkeypatch):
    bin_dir, calls, _ = fakes
    pids = tmp_path / "port-forward.pids"
    forwarding_kubectl(bin_dir, calls, pids)

    def forward_then_get_interrupted(run):
        run.port_forward("kserve", "service/x", "18080:80")
        os.kill(os.getpid(), signum)  # as Ctrl-C or `kill` would

    monkeypatch.setattr(kind_e2e, "STEPS", (Step("forward", lambda run: "port-forward", forward_then_get_interrupted),))
    # Python's own Ctrl-C handler, as in a terminal: a shell that starts a job in the background
    # hands it SIGINT ignored, and pytest would inherit that.
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = kind_e2e.main([])
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
    assert code == 130
    out = capfd.readouterr().out
    assert re.search(r"^1 forward\s+FAIL\s+exit status 130", out, re.MULTILINE)
    assert calls.read_text().splitlines()[-1] == "kind delete cluster --name model-server-e2e"
    (forwarder,) = map(int, pids.read_text().split())
    assert not alive(forwarder), "an interrupt must stop kubectl port-forward"
    assert signal.getsignal(signal.SIGTERM) is not kind_e2e.interrupted  # main restored the handler
