#!/usr/bin/env python3
"""End-to-end run of model-server on a local kind cluster: cluster, KServe,
image, demo model, smoke test, canary, autoscaling, summary, teardown.

The plan is data: STEPS lists the steps in order, each a function that runs its
commands through a Run. A dry run (--dry-run, or plan() in the tests) records and
prints every command instead of running it; a real run prints and runs the same
commands. Run with the project's Python: `.venv/bin/python scripts/kind_e2e.py`.
"""

import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Not resolved, like the bash script's `cd ... && pwd`: the commands show the path the user knows.
REPO = Path(os.path.abspath(__file__)).parent.parent

# The server's ports and the image's second demo model (see the Dockerfile).
SERVER_HTTP_PORT, SERVER_GRPC_PORT = 8080, 8081
DEMO_V2_ARGS = "{--model_dir=/opt/model-server/demo-v2}"
# Percentage points the observed canary share may differ from --canary-percent
# (200 requests at 20% have a standard deviation of about 3 points).
CANARY_TOLERANCE = 10
# How long the canary share may take to appear once the canary is ready.
CANARY_SETTLE_SECONDS = 60
# Parallel clients of the autoscaling load (the KPA target is 8 in-flight
# requests per pod; the HPA target is 70% of the pod's CPU request).
LOAD_CONCURRENCY = 16
# Exit status of `smoke_test.py split` when both versions answer but the share is off.
SPLIT_MISMATCH = 3


# ---------------------------------------------------------------- options --


@dataclass(frozen=True)
class Options:
    cluster_name: str = "model-server-e2e"
    k8s_version: str = "v1.34.0"
    node_image: str = ""
    kserve_version: str = "v0.20.0"
    cert_manager_version: str = "v1.17.0"
    envoy_gateway_version: str = "v1.8.1"
    knative_operator_version: str = "v1.21.1"
    metrics_server_version: str = "3.13.0"
    mode: str = "standard"
    deploy: str = "helm"
    engine: str = "docker"
    image: str = "kind.local/model-server:e2e"
    namespace: str = "model-server-e2e"
    model_name: str = "iris"
    canary_percent: int = 20
    requests: int = 200
    load_seconds: int = 180
    timeout: int = 300
    local_port: int = 18080
    keep: bool = False
    dry_run: bool = False


# (flag, value placeholder, help); the flag names the Options field, the help's
# [default] is the field's default. An option without a placeholder is a switch.
OPTIONS = (
    ("--cluster-name", "NAME", "kind cluster name"),
    ("--k8s-version", "VERSION", "Kubernetes version, node image kindest/node:VERSION"),
    (
        "--node-image",
        "IMAGE",
        "full node image, e.g. with an @sha256 digest from your\nkind release notes (overrides --k8s-version)",
    ),
    ("--kserve-version", "VERSION", "KServe Helm chart version"),
    ("--cert-manager-version", "V", "cert-manager chart version"),
    ("--envoy-gateway-version", "V", "Envoy Gateway chart version, Standard mode"),
    ("--knative-operator-version", "V", "Knative Operator chart version, Knative mode"),
    ("--metrics-server-version", "V", "metrics-server chart version"),
    ("--mode", "standard|knative", "KServe deployment mode"),
    ("--deploy", "helm|kustomize", "deploy with the Helm chart or `kubectl apply -k\nscripts/kind/overlays/<mode>`"),
    ("--engine", "docker|podman", "container engine; podman runs kind with\nKIND_EXPERIMENTAL_PROVIDER=podman"),
    ("--image", "IMAGE", "image reference to build and load"),
    ("--namespace", "NS", "namespace of the InferenceService"),
    ("--model-name", "NAME", "model / InferenceService / Helm release name"),
    ("--canary-percent", "N", "canary traffic percent"),
    ("--requests", "N", "requests sent to measure each traffic split"),
    ("--load-seconds", "N", "upper bound of the autoscaling load"),
    ("--timeout", "SECONDS", "timeout of each wait"),
    ("--local-port", "N", "first of three local ports for port-forwards\n(HTTP, gRPC, ingress)"),
    ("--keep", "", "keep the cluster at the end"),
    (
        "--dry-run",
        "",
        "print every command of the plan, in order, and run\n"
        "nothing (needs none of docker/podman, kind, kubectl, helm)",
    ),
)

CHOICES = {"mode": ("standard", "knative"), "deploy": ("helm", "kustomize"), "engine": ("docker", "podman")}

USAGE_HEAD = """\
Usage: scripts/kind_e2e.py [options]

Creates a kind cluster, installs cert-manager and KServe, builds and loads the
model-server image, deploys the demo iris model, then checks it:
  1. create the kind cluster (scripts/kind/cluster.yaml)
  2. install metrics-server, cert-manager, the ingress (Standard: Envoy Gateway
     + Gateway API, scripts/kind/gateway.yaml; Knative: Knative Serving with
     Kourier, scripts/kind/knative-serving.yaml) and KServe from
     oci://ghcr.io/kserve/charts
  3. build the image with scripts/build-image.sh and `kind load` it
  4. deploy the demo model (Helm chart charts/model-server, or the kustomize
     overlay) and wait for the InferenceService to be Ready
  5. smoke test V1, V2 REST and V2 gRPC through kubectl port-forward
     (scripts/smoke_test.py check)
  6. canary: deploy model version 2 at --canary-percent, send --requests V2
     requests through the ingress and report the model_version split, promote
     (all traffic to version 2), roll back (all traffic to version 1)
  7. autoscaling: load the model for up to --load-seconds and report the
     predictor's replica count going up (HPA in Standard mode, KPA in Knative)
  8. print a summary table and delete the cluster unless --keep

Options (defaults in brackets):
"""

USAGE_TAIL = """
Needs kind, kubectl, helm, docker or podman, and a Python with httpx and
tritonclient[grpc] for scripts/smoke_test.py (the Python running this script,
or set PYTHON). Tools in .tools/bin (scripts/install-tools.sh; TOOLS_DIR
overrides .tools) come first.
"""


def attribute(flag: str) -> str:
    return flag[2:].replace("-", "_")


def usage() -> str:
    defaults = Options()
    lines = []
    for flag, placeholder, text in (*OPTIONS, ("-h, --help", "", "show this help")):
        default = getattr(defaults, attribute(flag), "")
        if placeholder and default != "":
            text += f" [{default}]"
        first, *more = text.split("\n")
        lines.append(f"{f'  {flag} {placeholder}'.rstrip():<30} {first}")
        lines.extend(" " * 31 + line for line in more)
    return USAGE_HEAD + "\n".join(lines) + "\n" + USAGE_TAIL


class UsageError(Exception):
    def __init__(self, message: str, show_usage: bool = False):
        super().__init__(message)
        self.show_usage = show_usage


def parse_args(argv: Sequence[str]) -> Options:
    """Options from the command line; -h/--help prints the usage and exits 0."""
    takes_value = {flag: bool(placeholder) for flag, placeholder, _ in OPTIONS}
    values: dict[str, object] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(usage(), end="")
            raise SystemExit(0)
        if arg not in takes_value:
            raise UsageError(f"unknown option: {arg}", show_usage=True)
        if not takes_value[arg]:
            values[attribute(arg)] = True
        elif not args or args[0] == "":
            raise UsageError(f"{arg} needs a value")
        else:
            values[attribute(arg)] = args.pop(0)

    defaults = Options()
    for name, choices in CHOICES.items():
        value = values.get(name, getattr(defaults, name))
        if value not in choices:
            raise UsageError(f"--{name} must be {' or '.join(choices)}, not '{value}'")
    for spec in dataclasses.fields(Options):
        if spec.type is int and spec.name in values:
            if not re.fullmatch(r"[0-9]+", str(values[spec.name])):
                raise UsageError(f"expected a whole number, got '{values[spec.name]}'")
            values[spec.name] = int(str(values[spec.name]))
    options = dataclasses.replace(defaults, **values)
    if not 1 <= options.canary_percent <= 99:
        raise UsageError("--canary-percent must be 1-99")
    # The kind overlays (scripts/kind/overlays) spell these out.
    fixed = ("model_name", "image", "canary_percent")
    if options.deploy == "kustomize" and any(getattr(options, f) != getattr(defaults, f) for f in fixed):
        raise UsageError(
            "--deploy kustomize uses the values in scripts/kind/overlays: model iris,"
            " image kind.local/model-server:e2e, canary 20%; drop --model-name/--image/--canary-percent"
        )
    return options


# ---------------------------------------------------------------- running --

PLAIN_ARG = re.compile(r"[A-Za-z0-9_./:=@%+,-]+")


def quote(arg: str) -> str:
    """An argument the way a reader would type it (only what needs quoting is quoted)."""
    return arg if PLAIN_ARG.fullmatch(arg) else "'" + arg.replace("'", "'\\''") + "'"


@dataclass(frozen=True)
class Command:
    """One command of the plan; a background one runs while the next commands do."""

    argv: tuple[str, ...]
    background: bool = False

    def __str__(self) -> str:
        return "+ " + " ".join(map(quote, self.argv)) + (" &" if self.background else "")


class StepFailed(Exception):
    """The current step cannot go on; the message says why (and names the resource)."""


def poll(done: Callable[[], bool], every: float, seconds: float, sleep=time.sleep, clock=time.monotonic) -> bool:
    """Sleep EVERY seconds, then ask done(); repeat until it says yes (True) or SECONDS have passed (False)."""
    deadline = clock() + seconds
    while clock() < deadline:
        sleep(every)
        if done():
            return True
    return False


REQUIRED = object()


def json_field(document, path: Sequence[str | int], default=REQUIRED):
    """document[path[0]][path[1]]...; DEFAULT where a key is absent (StepFailed without one)."""
    value = document
    for key in path:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            value = None
        if value is None:
            if default is REQUIRED:
                where = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path)
                raise StepFailed(f"no {where} in the answer")
            return default
    return value


class Run:
    """One run of the workflow: the options, the names derived from them, what the steps
    learn on the way (pod, ingress host, revision), the background processes and the summary."""

    def __init__(self, options: Options, python: str, out: io.TextIOBase | None = None):
        self.options = options
        self.dry_run = options.dry_run
        self.out = out or sys.stdout
        self.commands: list[Command] = []
        self.summary: list[str] = []
        self.current_step = ""
        self.work_dir = "<tmp-dir>"  # shown in a dry run, created by a real one
        self.background_processes: list[subprocess.Popen] = []

        o = options
        self.node_image = o.node_image or f"kindest/node:{o.k8s_version}"
        context = f"kind-{o.cluster_name}"
        self.kubectl = ["kubectl", "--context", context]
        self.helm = ["helm", "--kube-context", context]
        self.kind = ["env", "KIND_EXPERIMENTAL_PROVIDER=podman", "kind"] if o.engine == "podman" else ["kind"]
        self.deployment_mode, self.autoscaler_class = (
            ("Standard", "hpa") if o.mode == "standard" else ("Knative", "kpa")
        )
        self.smoke = [python, str(REPO / "scripts" / "smoke_test.py")]
        self.http_port, self.grpc_port, self.ingress_port = o.local_port, o.local_port + 1, o.local_port + 2
        self.wait = ["--wait", "--timeout", f"{o.timeout}s"]  # of every helm install and upgrade
        self.chart = str(REPO / "charts" / "model-server")

        self.ingress_host = ""
        self.split_report = ""
        self.stable_revision = 1

    # -- output

    def say(self, line: str = "") -> None:
        print(line, file=self.out, flush=True)  # flushed: the commands write to the same terminal

    def log(self, message: str) -> None:
        self.say(f"kind-e2e: {message}")

    def begin(self, number: int, name: str, title: str) -> None:
        self.current_step = f"{number} {name}"
        self.say()
        self.say(f"==> Step {number}/{len(STEPS) + 1}: {title}")

    def record(self, name: str, result: str, detail: str) -> None:
        """One row of the summary table (PLAN instead of the result in a dry run)."""
        self.summary.append(f"{name:<20} {'PLAN' if self.dry_run else result:<6} {detail}")

    def passed(self, detail: str) -> None:
        self.record(self.current_step, "PASS", detail)

    def show(self, argv: Sequence[str], background: bool = False) -> None:
        command = Command(tuple(argv), background)
        self.commands.append(command)
        self.say(str(command))

    # -- commands of the plan

    def run(self, argv: Sequence[str], check: bool = True) -> None:
        """Run one command of the plan (with --dry-run only show it)."""
        self.show(argv)
        if not self.dry_run:
            execute(argv, check=check)

    def capture_json(self, argv: Sequence[str], placeholder, *path: str | int, default=REQUIRED):
        """Run a command answering JSON and return the field at PATH (PLACEHOLDER in a dry run)."""
        self.show(argv)
        if self.dry_run:
            return placeholder
        answer = execute(argv, stdout=subprocess.PIPE, text=True).stdout
        try:
            return json_field(json.loads(answer), path, default)
        except json.JSONDecodeError as error:
            raise StepFailed(f"no JSON from {' '.join(argv)}: {error}") from None
        except StepFailed as error:
            raise StepFailed(f"{error} of {' '.join(argv)}") from None

    def probe(self, argv: Sequence[str]) -> str | None:
        """Output of a read-only check the plan does not show; None in a dry run or when it fails."""
        if self.dry_run:
            return None
        try:
            result = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return None
        return result.stdout if result.returncode == 0 else None

    def background(self, log_file: str, argv: Sequence[str]) -> subprocess.Popen | None:
        """Start a command of the plan in the background, output to LOG_FILE; the teardown stops it."""
        self.show(argv, background=True)
        if self.dry_run:
            return None
        with open(log_file, "wb") as log:
            try:
                process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            except OSError as error:
                raise StepFailed(f"cannot start {argv[0]}: {error.strerror}") from None
        self.background_processes.append(process)
        return process

    def stop_background(self) -> None:
        for process in self.background_processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.background_processes = []

    def wait_for(self, resource: str, condition: str, namespace: str) -> None:
        """kubectl wait for CONDITION; on a timeout describe RESOURCE and fail."""
        timeout = self.options.timeout
        argv = [*self.kubectl, "wait", "-n", namespace, resource, f"--for={condition}", f"--timeout={timeout}s"]
        self.show(argv)
        if not self.dry_run and execute(argv, check=False).returncode != 0:
            self.fail_with_describe(resource, namespace, f"{resource} did not reach {condition} within {timeout}s")

    def wait_isvc_ready(self) -> None:
        self.wait_for(f"inferenceservice/{self.options.model_name}", "condition=Ready", self.options.namespace)

    def fail_with_describe(self, resource: str, namespace: str, message: str):
        """Show the state of RESOURCE (kubectl describe) on stderr, then fail with MESSAGE."""
        print(f"---- kubectl describe {resource} -n {namespace} ----", file=sys.stderr, flush=True)
        execute([*self.kubectl, "describe", "-n", namespace, resource], check=False, stdout=2)
        if resource.startswith("inferenceservice/"):
            print("---- predictor pods ----", file=sys.stderr, flush=True)
            selector = f"serving.kserve.io/inferenceservice={resource.split('/', 1)[1]}"
            execute([*self.kubectl, "describe", "-n", namespace, "pods", "-l", selector], check=False, stdout=2)
        raise StepFailed(message)

    def port_forward(self, namespace: str, target: str, *ports: str) -> None:
        """`kubectl port-forward` in the background; wait until it listens on every local port
        (a port already taken by another program would otherwise send the checks to that program)."""
        log_file = f"{self.work_dir}/port-forward-{ports[0].split(':')[0]}.log"
        process = self.background(log_file, [*self.kubectl, "port-forward", "-n", namespace, target, *ports])
        if process is None:
            return

        def listening() -> bool:
            log = Path(log_file).read_text(errors="replace") if Path(log_file).exists() else ""
            return all(f"Forwarding from 127.0.0.1:{port.split(':')[0]} " in log for port in ports)

        poll(lambda: process.poll() is not None or listening(), every=1, seconds=30)  # exited: kubectl gave up
        if process.poll() is None and listening():
            return
        print(Path(log_file).read_text(errors="replace") if Path(log_file).exists() else "", file=sys.stderr)
        raise StepFailed(
            f"kubectl port-forward to {target} did not listen on 127.0.0.1 port(s) {' '.join(ports)} within 30s"
        )


def execute(argv: Sequence[str], check: bool = True, **how) -> subprocess.CompletedProcess:
    """Run ARGV; with CHECK a failure fails the step, naming the command."""
    sys.stdout.flush()
    try:
        result = subprocess.run(argv, **how)
    except OSError as error:  # not found or not executable: what a shell reports as 127
        print(f"kind-e2e: {argv[0]}: {error.strerror}", file=sys.stderr, flush=True)
        result = subprocess.CompletedProcess(argv, 127)
    if check and result.returncode != 0:
        status = result.returncode if result.returncode > 0 else 128 - result.returncode  # killed by a signal
        raise StepFailed(f"command failed (exit {status}): {' '.join(argv)}")
    return result


# ------------------------------------------------------------------ steps --


def create_cluster(run: Run) -> None:
    o = run.options
    clusters = run.probe([*run.kind, "get", "clusters"])
    if clusters is not None and o.cluster_name in clusters.splitlines():
        run.log(f"reusing the existing kind cluster {o.cluster_name}")
    else:
        config = str(REPO / "scripts" / "kind" / "cluster.yaml")
        run.run(
            [*run.kind, "create", "cluster", "--name", o.cluster_name, "--image", run.node_image]
            + ["--config", config, "--wait", f"{o.timeout}s"]
        )
    run.passed(f"{o.cluster_name} ({run.node_image})")


def install_platform(run: Run) -> None:
    o, helm, wait = run.options, run.helm, run.wait
    # metrics-server feeds the HPA; kind's kubelets serve self-signed certificates.
    run.run(
        [*helm, "upgrade", "--install", "metrics-server", "metrics-server"]
        + ["--repo", "https://kubernetes-sigs.github.io/metrics-server/", "--version", o.metrics_server_version]
        + ["--namespace", "kube-system", "--set", "args={--kubelet-insecure-tls}", *wait]
    )
    run.run(
        [*helm, "upgrade", "--install", "cert-manager", "cert-manager"]
        + ["--repo", "https://charts.jetstack.io", "--version", o.cert_manager_version]
        + ["--namespace", "cert-manager", "--create-namespace", "--set", "crds.enabled=true", *wait]
    )
    kserve_args = ["--set", f"kserve.version={o.kserve_version}"]
    kserve_args += ["--set", f"kserve.controller.deploymentMode={run.deployment_mode}"]
    if o.mode == "standard":
        # Envoy Gateway's chart also installs the Gateway API CRDs; KServe must
        # find them at start to write HTTPRoutes (which carry the canary split).
        run.run(
            [*helm, "upgrade", "--install", "eg", "oci://docker.io/envoyproxy/gateway-helm"]
            + ["--version", o.envoy_gateway_version, "--namespace", "envoy-gateway-system", "--create-namespace", *wait]
        )
        kserve_args += ["--set", "kserve.controller.gateway.ingressGateway.enableGatewayApi=true"]
        kserve_args += ["--set", "kserve.controller.gateway.ingressGateway.className=envoy"]
    else:
        run.run(
            [*helm, "upgrade", "--install", "knative-operator", "knative-operator"]
            + ["--repo", "https://knative.github.io/operator", "--version", o.knative_operator_version]
            + ["--namespace", "knative-operator", "--create-namespace", *wait]
        )
        run.run([*run.kubectl, "apply", "-f", str(REPO / "scripts" / "kind" / "knative-serving.yaml")])
        run.wait_for("knativeserving/knative-serving", "condition=Ready", "knative-serving")
        # No Istio: the InferenceService URL is then the Knative route Kourier serves.
        kserve_args += ["--set", "kserve.controller.gateway.disableIstioVirtualHost=true"]
    run.run(
        [*helm, "upgrade", "--install", "kserve-crd", "oci://ghcr.io/kserve/charts/kserve-crd"]
        + ["--version", o.kserve_version, "--namespace", "kserve", "--create-namespace", *wait]
    )
    run.run(
        [*helm, "upgrade", "--install", "kserve-resources", "oci://ghcr.io/kserve/charts/kserve-resources"]
        + ["--version", o.kserve_version, "--namespace", "kserve", *kserve_args, *wait]
    )
    run.wait_for("deployment/kserve-controller-manager", "condition=Available", "kserve")
    if o.mode == "standard":
        run.run([*run.kubectl, "apply", "-f", str(REPO / "scripts" / "kind" / "gateway.yaml")])
        run.wait_for("gateway/kserve-ingress-gateway", "condition=Programmed", "kserve")
    run.passed(f"KServe {o.kserve_version} {run.deployment_mode}, cert-manager {o.cert_manager_version}")


def build_and_load_image(run: Run) -> None:
    o = run.options
    archive = f"{run.work_dir}/image.tar"
    run.run([str(REPO / "scripts" / "build-image.sh"), "--tag", o.image, "--engine", o.engine])
    # An image archive works with both engines (`kind load docker-image` needs docker).
    run.run([o.engine, "save", "-o", archive, o.image])
    run.run([*run.kind, "load", "image-archive", archive, "--name", o.cluster_name])
    run.passed(o.image)


def apply_overlay(run: Run, name: str) -> None:
    """kubectl apply -k one of the kind overlays (scripts/kind/overlays/NAME), each of
    which is manifests/overlays/<NAME> with the kind image and demo models."""
    overlay = str(REPO / "scripts" / "kind" / "overlays" / name)
    run.run([*run.kubectl, "apply", "-n", run.options.namespace, "-k", overlay])


def deploy_model(run: Run) -> None:
    o = run.options
    if o.deploy == "helm":
        repository, tag = o.image.rsplit(":", 1)[0], o.image.rsplit(":", 1)[-1]
        run.run(
            [*run.helm, "upgrade", "--install", o.model_name, run.chart]
            + ["--namespace", o.namespace, "--create-namespace"]
            + ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]
            + ["--set", "image.pullPolicy=IfNotPresent", "--set", f"model.name={o.model_name}"]
            + ["--set", f"deploymentMode={run.deployment_mode}", "--set", f"autoscaling.class={run.autoscaler_class}"]
            + ["--set", "autoscaling.minReplicas=1", "--set", "autoscaling.maxReplicas=3", *run.wait]
        )
    else:
        if run.probe([*run.kubectl, "get", "namespace", o.namespace]) is None:
            run.run([*run.kubectl, "create", "namespace", o.namespace])
        apply_overlay(run, o.mode)
    run.wait_isvc_ready()
    run.passed(f"inferenceservice/{o.model_name} Ready ({o.deploy})")


def smoke_test(run: Run) -> None:
    o = run.options
    pod = run.capture_json(
        [*run.kubectl, "get", "pods", "-n", o.namespace]
        + ["-l", f"serving.kserve.io/inferenceservice={o.model_name},component=predictor"]
        + ["--field-selector=status.phase=Running", "-o", "json"],
        "<predictor-pod>",
        *("items", 0, "metadata", "name"),
    )
    run.port_forward(
        o.namespace, f"pod/{pod}", f"{run.http_port}:{SERVER_HTTP_PORT}", f"{run.grpc_port}:{SERVER_GRPC_PORT}"
    )
    run.run(
        [*run.smoke, "check", "--url", f"http://127.0.0.1:{run.http_port}", "--grpc", f"127.0.0.1:{run.grpc_port}"]
        + ["--model", o.model_name]
    )
    run.stop_background()
    run.passed(f"V1, V2 REST, V2 gRPC on pod/{pod}")


def open_ingress(run: Run) -> None:
    """Port-forward the ingress (Envoy Gateway or Kourier) to the ingress port and learn
    the Host header that routes to the InferenceService."""
    o = run.options
    if o.mode == "standard":
        owner = "gateway.envoyproxy.io/owning-gateway-namespace=kserve"
        owner += ",gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway"
        service = run.capture_json(
            [*run.kubectl, "get", "services", "-n", "envoy-gateway-system", "-l", owner, "-o", "json"],
            "<envoy-service>",
            *("items", 0, "metadata", "name"),
        )
        run.port_forward("envoy-gateway-system", f"service/{service}", f"{run.ingress_port}:80")
    else:
        run.port_forward("knative-serving", "service/kourier", f"{run.ingress_port}:80")
    url = run.capture_json(
        [*run.kubectl, "get", "-n", o.namespace, f"inferenceservice/{o.model_name}", "-o", "json"],
        "http://<isvc-host>",
        *("status", "url"),
    )
    run.ingress_host = url.split("://", 1)[-1].split("/", 1)[0]


def measure_split(run: Run, expect: str, tolerance: int, seconds: int) -> int:
    """Send --requests V2 requests through the ingress and compare the share of the model
    version with the percent of EXPECT (VERSION=PERCENT) ± TOLERANCE. Repeats every 5s for
    up to SECONDS while the share is off, because a change reaches the ingress a little
    after the InferenceService reports Ready. Sets split_report; returns the smoke
    client's status (SPLIT_MISMATCH: the share is off)."""
    o = run.options
    command = [*run.smoke, "split", "--url", f"http://127.0.0.1:{run.ingress_port}", "--host", run.ingress_host]
    command += ["--model", o.model_name, "--requests", str(o.requests), "--expect", expect]
    command += ["--tolerance", str(tolerance)]
    run.show(command)
    run.split_report = f"model_version {expect.replace('=', ' at ', 1)}% ± {tolerance}"
    if run.dry_run:
        run.log(f"(repeated every 5s while the share is off, for up to {seconds}s)")
        return 0
    outcome = subprocess.CompletedProcess(command, 0, "")

    def attempt() -> bool:
        nonlocal outcome
        outcome = execute(command, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = (outcome.stdout or "").splitlines()
        run.split_report = "".join(f"{line} " for line in lines if line.startswith("model_version"))
        return outcome.returncode != SPLIT_MISMATCH

    if not attempt():

        def again() -> bool:
            run.log(f"share not there yet: {run.split_report}")
            return attempt()

        poll(again, every=5, seconds=seconds)
    run.say((outcome.stdout or "").rstrip("\n"))
    return outcome.returncode


def change_model(run: Run, state: str) -> None:
    """The model's next state: canary (v2 at --canary-percent), promote (v2 only) or
    rollback (v1 only, as deployed in step 4)."""
    o = run.options
    if o.deploy == "kustomize":
        apply_overlay(run, {"canary": f"canary-{o.mode}", "promote": f"promoted-{o.mode}", "rollback": o.mode}[state])
        return
    upgrade = [*run.helm, "upgrade", o.model_name, run.chart, "--namespace", o.namespace, "--reuse-values"]
    if state == "canary":
        run.run(
            [*upgrade, "--set", "canary.enabled=true", "--set", f"canary.trafficPercent={o.canary_percent}"]
            + ["--set", f"canary.extraArgs={DEMO_V2_ARGS}", *run.wait]
        )
    elif state == "promote":  # v2's settings move to the stable model, the canary goes
        run.run([*upgrade, "--set", "canary.enabled=false", "--set", f"model.extraArgs={DEMO_V2_ARGS}", *run.wait])
    else:
        run.run([*run.helm, "rollback", o.model_name, str(run.stable_revision), "--namespace", o.namespace, *run.wait])


def canary(run: Run) -> None:
    o = run.options
    run.stable_revision = 1
    if o.deploy == "helm":
        history = [*run.helm, "history", o.model_name, "--namespace", o.namespace, "--max", "1", "-o", "json"]
        run.stable_revision = int(run.capture_json(history, 1, *(0, "revision"), default=1))
    open_ingress(run)

    change_model(run, "canary")
    run.wait_isvc_ready()
    if o.mode == "standard":
        run.wait_for(f"inferenceservice/{o.model_name}", "condition=CanaryPredictorReady", o.namespace)
    status = measure_split(run, f"2={o.canary_percent}", CANARY_TOLERANCE, CANARY_SETTLE_SECONDS)
    if status == 0:
        run.record("6 canary split", "PASS", run.split_report)
    elif status == SPLIT_MISMATCH:  # Both versions answer but the shares are off: report it and go on.
        run.record("6 canary split", "WARN", f"{run.split_report}(expected 2={o.canary_percent}% ± {CANARY_TOLERANCE})")
        run.log(
            f"WARNING: the observed split is not {o.canary_percent}%. In Standard mode only the HTTPRoute's"
            " backend weights split traffic, which needs a KServe controller that writes them"
        )
    else:
        raise StepFailed(f"canary requests through the ingress failed: {run.split_report}")

    change_model(run, "promote")
    run.wait_isvc_ready()
    if measure_split(run, "2=100", 0, o.timeout) != 0:
        raise StepFailed(f"after the promotion not every request reached model v2: {run.split_report}")
    run.record("6 promote", "PASS", run.split_report)

    change_model(run, "rollback")
    run.wait_isvc_ready()
    if measure_split(run, "1=100", 0, o.timeout) != 0:
        raise StepFailed(f"after the rollback not every request reached model v1: {run.split_report}")
    run.record("6 rollback", "PASS", run.split_report)


def read_replicas(run: Run) -> int:
    """What the autoscaler wants for the stable predictor: the HPA's desired replicas
    (Standard) or the latest revision's KPA scale (Knative)."""
    o = run.options
    get = [*run.kubectl, "get", "-n", o.namespace]
    if o.mode == "standard":
        return int(
            run.capture_json(
                [*get, f"hpa/{o.model_name}-predictor", "-o", "json"], 1, "status", "desiredReplicas", default=0
            )
        )
    revision = run.capture_json(
        [*get, f"inferenceservice/{o.model_name}", "-o", "json"],
        "<revision>",
        *("status", "components", "predictor", "latestReadyRevision"),
    )
    autoscaler = f"podautoscalers.autoscaling.internal.knative.dev/{revision}"
    return int(run.capture_json([*get, autoscaler, "-o", "json"], 1, "status", "desiredScale", default=0))


def autoscaling(run: Run) -> None:
    o = run.options
    before = replicas = read_replicas(run)
    # Scaling up from zero (Knative) is activation, not scaling: ask for 2+.
    target = before + 1 if before > 0 else 2
    run.background(
        f"{run.work_dir}/load.log",
        [*run.smoke, "load", "--url", f"http://127.0.0.1:{run.ingress_port}", "--host", run.ingress_host]
        + ["--model", o.model_name, "--seconds", str(o.load_seconds), "--concurrency", str(LOAD_CONCURRENCY)],
    )
    if run.dry_run:
        run.log(f"(then reads the replica count every 10s until it rises, for up to {o.load_seconds}s)")
        run.passed(f"replicas rise under load ({run.autoscaler_class})")
        return

    def risen() -> bool:
        nonlocal replicas
        replicas = read_replicas(run)
        run.log(f"replicas: {replicas} (started at {before})")
        return replicas >= target

    poll(risen, every=10, seconds=o.load_seconds)
    run.stop_background()
    run.say(Path(run.work_dir, "load.log").read_text(errors="replace").rstrip("\n"))
    if replicas < target:
        resource = f"hpa/{o.model_name}-predictor" if o.mode == "standard" else f"inferenceservice/{o.model_name}"
        run.fail_with_describe(
            resource, o.namespace, f"replicas stayed at {replicas} (from {before}) during {o.load_seconds}s of load"
        )
    run.passed(f"replicas {before} -> {replicas} under load ({run.autoscaler_class})")


@dataclass(frozen=True)
class Step:
    """One step of the plan: its name in the summary, its heading, and what it does."""

    name: str
    title: Callable[[Run], str] = field(repr=False)
    run: Callable[[Run], None] = field(repr=False)


STEPS = (
    Step("cluster", lambda run: f"create kind cluster {run.options.cluster_name} ({run.node_image})", create_cluster),
    Step(
        "platform",
        lambda run: (
            "install metrics-server, cert-manager, the ingress and KServe"
            f" {run.options.kserve_version} ({run.deployment_mode} mode)"
        ),
        install_platform,
    ),
    Step("image", lambda run: f"build {run.options.image} and load it into kind", build_and_load_image),
    Step(
        "deploy",
        lambda run: f"deploy the demo model (v1) with {run.options.deploy} and wait for it to be Ready",
        deploy_model,
    ),
    Step("smoke", lambda run: "smoke test V1, V2 REST and V2 gRPC through kubectl port-forward", smoke_test),
    Step(
        "canary",
        lambda run: f"canary: model v2 at {run.options.canary_percent}%, measure the split, promote, roll back",
        canary,
    ),
    Step(
        "autoscaling",
        lambda run: f"autoscaling: load for up to {run.options.load_seconds}s and watch the replica count rise",
        autoscaling,
    ),
)


def teardown(run: Run) -> None:
    """The last step, whatever happened before: stop the port-forwards and the load, delete
    the cluster unless --keep, print the summary."""
    o = run.options
    run.stop_background()
    run.begin(len(STEPS) + 1, "teardown", "summary and teardown")
    delete = [*run.kind, "delete", "cluster", "--name", o.cluster_name]
    if o.keep:
        run.log(f"keeping cluster {o.cluster_name} (--keep); delete it with: {' '.join(delete)}")
    else:
        run.run(delete, check=False)  # the summary still follows if deleting fails
    if not run.dry_run:
        shutil.rmtree(run.work_dir, ignore_errors=True)
    run.say()
    run.say(f"{'STEP':<20} {'RESULT':<6} DETAIL")
    for row in run.summary:
        run.say(row)
    if run.dry_run:
        run.say("(dry run: nothing was executed)")


def perform(run: Run) -> int:
    """Every step in order, stopping at the first that fails, then the teardown; the exit status."""
    o = run.options
    if not run.dry_run:
        run.work_dir = tempfile.mkdtemp(prefix="kind-e2e-")
    try:
        run.log(
            f"plan: cluster {o.cluster_name}, KServe {o.kserve_version} in {run.deployment_mode} mode,"
            f" deploy with {o.deploy}, engine {o.engine}"
        )
        for number, step in enumerate(STEPS, 1):
            run.begin(number, step.name, step.title(run))
            step.run(run)
        return 0
    except StepFailed as failure:
        print(f"kind-e2e: FAILED at step {run.current_step}: {failure}", file=sys.stderr, flush=True)
        run.record(run.current_step, "FAIL", str(failure))
        return 1
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see main)
        if run.current_step:
            run.record(run.current_step, "FAIL", "exit status 130")
        return 130
    except BaseException:
        if run.current_step:
            run.record(run.current_step, "FAIL", "exit status 1")
        raise
    finally:
        teardown(run)


def dry_run(options: Options, python: str | None = None) -> Run:
    """A dry run of OPTIONS, printed into the Run's `out`: its commands, summary and output."""
    run = Run(dataclasses.replace(options, dry_run=True), python or smoke_python(), out=io.StringIO())
    perform(run)
    return run


def plan(options: Options, python: str | None = None) -> list[Command]:
    """Every command a run with OPTIONS executes, in order (the real run repeats some while it polls)."""
    return dry_run(options, python).commands


# ------------------------------------------------------------------- main --


def tools_bin() -> Path:
    return Path(os.environ.get("TOOLS_DIR") or REPO / ".tools") / "bin"


def smoke_python() -> str:
    """The Python of scripts/smoke_test.py: $PYTHON, or the one running this script."""
    return os.environ.get("PYTHON") or sys.executable


def check_tools(engine: str, python: str) -> str | None:
    """What is missing for a real run (None: nothing); nothing of the plan runs before this."""
    missing = [tool for tool in ("kind", "kubectl", "helm", engine) if not shutil.which(tool)]
    if missing:
        if "docker" in missing:
            missing.append("(or use --engine podman)")
        return f"missing required tool(s): {' '.join(missing)}"
    try:
        importable = (
            subprocess.run([python, "-c", "import httpx, tritonclient.grpc"], capture_output=True).returncode == 0
        )
    except OSError:
        importable = False
    if not importable:
        return (
            f"{python} cannot import httpx and tritonclient.grpc (scripts/smoke_test.py needs them);"
            " run 'make venv' or set PYTHON"
        )
    return None


def interrupted(signum, frame):
    raise KeyboardInterrupt  # the same teardown as Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as error:
        print(f"kind-e2e: {error}", file=sys.stderr)
        if error.show_usage:
            print(usage(), end="", file=sys.stderr)
        return 2
    # The project's tools (scripts/install-tools.sh) come first, for the check and every command.
    os.environ["PATH"] = f"{tools_bin()}{os.pathsep}{os.environ.get('PATH', '')}"
    python = smoke_python()
    if not options.dry_run:
        problem = check_tools(options.engine, python)
        if problem:
            print(f"kind-e2e: {problem}", file=sys.stderr)
            return 1
    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        return perform(Run(options, python))
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
