"""The chart's cross-cutting values: containerPorts, serviceAccount, commonLabels/commonAnnotations,
and the one entry point (model-server.validateValues) of the checks the schema cannot express."""

from __future__ import annotations

import re

import pytest
import yaml

from model_server.stream.settings import StreamSettings

from .kserve_rules import violations
from .rendering import CHART, helm_template, helm_template_error, kinds, one, run
from .test_chart import KNATIVE, RENDERINGS
from .test_chart_stream import MINIMAL_STREAM

PORTS_IDENTITY = CHART / "ci" / "ports-identity-values.yaml"
VALUES = yaml.safe_load(PORTS_IDENTITY.read_text())
PORTS = ["--set", "containerPorts.http=9000", "--set", "containerPorts.grpc=9001"]
STREAM = MINIMAL_STREAM
BATCH = ["--set", "batch.enabled=true", "--set", "batch.input=s3://in/", "--set", "batch.output=s3://out/"]
CRON = [*BATCH, "--set", "batch.schedule=0 2 * * *"]
EVERYTHING = [
    *STREAM,
    *BATCH,
    "--set",
    "monitoring.serviceMonitor.force=true",
    "--set",
    "networkPolicy.enabled=true",
    "--set",
    "serviceAccount.create=true",
]


def server_containers(objects: list[dict]) -> list[dict]:
    """Every container that runs the model server: our runtime's, a custom predictor container."""
    found = [c for o in objects if o["kind"] == "ServingRuntime" for c in o["spec"]["containers"]]
    isvc = one(objects, "InferenceService")["spec"]
    predictors = [isvc["predictor"]] + [c["predictor"] for c in isvc.get("canary", [])]
    return found + [c for p in predictors for c in p.get("containers", [])]


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    """The pod-level fields of every pod the chart's workloads run, by where they are."""
    specs = {}
    for o in objects:
        if o["kind"] == "InferenceService":
            specs["predictor"] = o["spec"]["predictor"]
            for canary in o["spec"].get("canary", []):
                specs["canary"] = canary["predictor"]
        elif o["kind"] in ("Deployment", "Job"):
            specs[o["kind"]] = o["spec"]["template"]["spec"]
        elif o["kind"] == "CronJob":
            specs["CronJob"] = o["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return specs


# containerPorts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [[], ["--set", "customContainer.enabled=true"], ["--set", "canary.enabled=true"], [*KNATIVE]],
    ids=["runtime", "custom-container", "standard-canary", "knative"],
)
def test_container_ports_move_every_port_of_the_server(helm, schema_validator, extra):
    objects = helm_template(helm, *PORTS, *extra)
    assert [p for o in objects for p in schema_validator.validate(o)] == []
    runtimes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServingRuntime"}
    assert violations(one(objects, "InferenceService"), runtimes) == []
    knative = "deploymentMode=Knative" in extra
    for container in server_containers(objects):
        assert {"--http_port=9000", "--grpc_port=9001"} <= set(container["args"])
        ports = [(p["name"], p["containerPort"]) for p in container["ports"]]
        assert ports == ([("http1", 9000)] if knative else [("http1", 9000), ("h2c", 9001)])
        assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 9000}
        assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 9000}
    for runtime in runtimes.values():  # KServe's Prometheus scraping reads the port here
        assert runtime["spec"]["annotations"]["prometheus.kserve.io/port"] == "9000"


def test_knative_grpc_serves_on_the_grpc_container_port(helm):
    objects = helm_template(helm, *PORTS, *KNATIVE, "--set", "model.protocolVersion=grpc-v2")
    (container,) = server_containers(objects)
    assert container["ports"] == [{"name": "h2c", "containerPort": 9001, "protocol": "TCP"}]
    assert "--grpc_port=9001" in container["args"] and "readinessProbe" not in container


def test_container_ports_move_the_stream_consumer_and_its_network_policy(helm, schema_validator):
    objects = helm_template(
        helm, *PORTS, *STREAM, "--set", "networkPolicy.enabled=true", "--set", "networkPolicy.prometheus.namespace=mon"
    )
    assert [p for o in objects for p in schema_validator.validate(o)] == []
    deployment = one(objects, "Deployment")
    (consumer,) = deployment["spec"]["template"]["spec"]["containers"]
    # The consumer's own parser reads the flag the chart renders.
    assert StreamSettings.from_args(consumer["args"], environ={}).http_port == 9000
    assert consumer["ports"] == [{"name": "http", "containerPort": 9000, "protocol": "TCP"}]
    assert consumer["readinessProbe"]["httpGet"]["port"] == consumer["livenessProbe"]["httpGet"]["port"] == 9000
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9000"
    policies = {o["metadata"]["name"]: o for o in objects if o["kind"] == "NetworkPolicy"}
    assert policies["demo-model-server-stream"]["spec"]["ingress"][0]["ports"] == [{"port": 9000, "protocol": "TCP"}]


def test_no_port_literal_is_left_in_a_rendering_on_other_ports(helm):
    manifest = run([helm, "template", "demo", str(CHART), "-f", str(PORTS_IDENTITY)]).stdout
    assert re.findall(r"\b808[01]\b", manifest) == []
    assert {"9000", "9001"} <= set(re.findall(r"\b900[01]\b", manifest))


def test_default_ports_stay_8080_and_8081(helm):
    (container,) = server_containers(helm_template(helm))
    assert {"--http_port=8080", "--grpc_port=8081"} <= set(container["args"])
    assert [p["containerPort"] for p in container["ports"]] == [8080, 8081]


# serviceAccount --------------------------------------------------------------------------------


def test_no_service_account_by_default(helm):
    objects = helm_template(helm, *STREAM, *BATCH, "--set", "canary.enabled=true")
    assert "ServiceAccount" not in kinds(objects)
    for where, spec in pod_specs(objects).items():
        assert "serviceAccountName" not in spec and spec["automountServiceAccountToken"] is False, where


@pytest.mark.parametrize(
    "extra",
    [["--set", "canary.enabled=true"], [*KNATIVE, "--set", "canary.enabled=true"], CRON],
    ids=["standard-canary", "knative-canary", "cronjob"],
)
def test_a_created_service_account_is_valid_and_every_pod_runs_as_it(helm, schema_validator, extra):
    objects = helm_template(helm, "-f", str(PORTS_IDENTITY), *extra, release="iris")
    account = one(objects, "ServiceAccount")
    assert schema_validator.validate(account) == []
    assert account["metadata"]["name"] == "iris-model-server"
    assert account["metadata"]["annotations"] == {
        **VALUES["serviceAccount"]["annotations"],
        **VALUES["commonAnnotations"],
    }
    assert account["automountServiceAccountToken"] is False
    specs = pod_specs(objects)
    assert {"predictor", "Deployment"} <= set(specs) and {"Job", "CronJob"} & set(specs)
    for where, spec in specs.items():
        assert spec["serviceAccountName"] == "iris-model-server", where
        assert spec["automountServiceAccountToken"] is False, where
    test_pod = one(objects, "Pod")["spec"]  # the `helm test` client needs no identity
    assert "serviceAccountName" not in test_pod and test_pod["automountServiceAccountToken"] is False


def test_service_account_name_and_automount(helm):
    named = helm_template(
        helm, *STREAM, *BATCH, "--set", "serviceAccount.create=true", "--set", "serviceAccount.name=models"
    )
    assert one(named, "ServiceAccount")["metadata"]["name"] == "models"
    assert {s["serviceAccountName"] for s in pod_specs(named).values()} == {"models"}
    existing = helm_template(helm, *STREAM, *BATCH, "--set", "serviceAccount.name=storage")
    assert "ServiceAccount" not in kinds(existing)
    assert {s["serviceAccountName"] for s in pod_specs(existing).values()} == {"storage"}
    mounted = helm_template(
        helm, *STREAM, *BATCH, "--set", "serviceAccount.create=true", "--set", "serviceAccount.automount=true"
    )
    assert one(mounted, "ServiceAccount")["automountServiceAccountToken"] is True
    assert {s["automountServiceAccountToken"] for s in pod_specs(mounted).values()} == {True}


# commonLabels / commonAnnotations -----------------------------------------------------------------

COMMON = [
    "--set",
    "commonLabels.team=ml-platform",
    "--set-string",
    "commonLabels.cost-center=4711",
    "--set",
    "commonAnnotations.owner=ml-platform@example.com",
]


@pytest.mark.parametrize("values", [*RENDERINGS.values(), EVERYTHING], ids=[*RENDERINGS.keys(), "everything"])
def test_common_labels_and_annotations_are_on_every_object(helm, schema_validator, values):
    objects = helm_template(helm, *values, *COMMON)
    assert [p for o in objects for p in schema_validator.validate(o)] == []
    for o in objects:
        where = f"{o['kind']}/{o['metadata']['name']}"
        labels, annotations = o["metadata"]["labels"], o["metadata"].get("annotations", {})
        assert {"team": "ml-platform", "cost-center": "4711"}.items() <= labels.items(), where
        assert annotations.get("owner") == "ml-platform@example.com", where
        assert labels["app.kubernetes.io/name"] == "model-server", where


def test_common_labels_never_override_the_chart_s_own(helm):
    objects = helm_template(
        helm,
        *EVERYTHING,
        "--set",
        "commonLabels.app\\.kubernetes\\.io/name=other",
        "--set",
        "commonLabels.app\\.kubernetes\\.io/managed-by=other",
        "--set",
        "commonAnnotations.helm\\.sh/hook=pre-install",
        "--set",
        "commonAnnotations.serving\\.kserve\\.io/deploymentMode=Knative",
    )
    for o in objects:
        assert o["metadata"]["labels"]["app.kubernetes.io/name"] == "model-server"
        assert o["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert one(objects, "Pod")["metadata"]["annotations"]["helm.sh/hook"] == "test"
    isvc = one(objects, "InferenceService")["metadata"]
    assert isvc["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    # KServe copies these onto the pods: still no chart version.
    assert "helm.sh/chart" not in isvc["labels"] and "app.kubernetes.io/version" not in isvc["labels"]


def test_common_labels_stay_out_of_selectors_and_pod_templates(helm):
    plain, common = helm_template(helm, *EVERYTHING), helm_template(helm, *EVERYTHING, *COMMON)

    def without_metadata(objects):
        return [{k: v for k, v in o.items() if k != "metadata"} for o in objects]

    # Only the objects' own metadata changes: no selector, pod template or Job name moves.
    assert without_metadata(plain) == without_metadata(common)
    assert [o["metadata"]["name"] for o in plain] == [o["metadata"]["name"] for o in common]


# The one validation entry point ------------------------------------------------------------------

TEMPLATES = CHART / "templates"


@pytest.mark.parametrize(
    "values, message",
    [
        (
            ["--set", "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn"],
            "serviceAccount.annotations are for the ServiceAccount this chart creates",
        ),
        (["--set", "batch.enabled=true", "--set", "batch.input=s3://in/"], "batch.enabled needs batch.input and"),
        (
            ["--set", "containerPorts.grpc=8080"],
            "containerPorts.http and containerPorts.grpc must differ (both are 8080)",
        ),
    ],
    ids=["service-account-annotations", "batch-without-output", "same-ports"],
)
def test_half_configured_values_are_refused_by_validate_values(helm, values, message):
    error = helm_template_error(helm, *values)
    assert "templates/NOTES.txt" in error and "VALUES VALIDATION:" in error and message in error


def test_validate_values_reports_every_problem_at_once(helm):
    error = helm_template_error(
        helm,
        "--set",
        "terminationGracePeriodSeconds=25",
        "--set",
        "containerPorts.grpc=8080",
        "--set",
        "serviceAccount.annotations.a=b",
        "--set",
        "batch.enabled=true",
        "--set",
        "autoscaling.minReplicas=3",
        "--set",
        "autoscaling.maxReplicas=2",
    )
    problems = error.split("VALUES VALIDATION:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [p.split(" ", 1)[0] for p in problems] == [
        "terminationGracePeriodSeconds",
        "autoscaling.maxReplicas",
        "containerPorts.http",
        "serviceAccount.annotations",
        "batch.enabled",
    ]


def test_every_check_is_called_from_the_one_entry_point_and_nothing_else_fails():
    validations = (TEMPLATES / "_validations.tpl").read_text()
    checks = re.findall(r'define "model-server\.validateValues\.(\w+)"', validations)
    listed = re.search(r"range \$check := list(.*?)}}", validations, flags=re.S).group(1).split()
    assert checks and [name.strip('"') for name in listed] == checks
    calls, fails = [], []
    for path in sorted(TEMPLATES.rglob("*")):
        if path.is_file():
            text = path.read_text()
            calls += [path.name] * text.count('include "model-server.validateValues"')
            fails += [path.name] * len(
                re.findall(r"\bfail\b", re.sub(r"{{-?\s*/\*.*?\*/\s*-?}}", "", text, flags=re.S))
            )
    assert calls == ["NOTES.txt"]
    assert fails == ["_validations.tpl"]
