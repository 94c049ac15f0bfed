"""The Helm chart, rendered by the real helm: lint, strict validation, v0.20 rules, values landing where they should."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from .kserve_rules import violations
from .rendering import CHART, CI_VALUES, helm_template, helm_template_error, kinds, one, run
from .schemas import third_party_crds_dir

# The command the kind end-to-end script runs (its contract with this chart).
E2E_VALUES = [
    "--set",
    "image.repository=localhost/model-server",
    "--set",
    "image.tag=e2e",
    "--set",
    "image.pullPolicy=IfNotPresent",
    "--set",
    "model.name=iris",
    "--set",
    "deploymentMode=Standard",
    "--set",
    "autoscaling.class=hpa",
    "--set",
    "autoscaling.minReplicas=1",
    "--set",
    "autoscaling.maxReplicas=3",
    "--set",
    "canary.enabled=true",
    "--set",
    "canary.trafficPercent=20",
    "--set",
    "canary.extraArgs={--model_dir=/opt/model-server/demo-v2}",
]
KNATIVE = ["--set", "deploymentMode=Knative", "--set", "autoscaling.class=kpa"]
RENDERINGS = {"defaults": []} | {p.stem: ["-f", str(p)] for p in CI_VALUES}


def isvc_of(objects):
    return one(objects, "InferenceService")


def runtime_of(objects):
    return one(objects, "ServingRuntime")["spec"]["containers"][0]


def test_ci_covers_every_supported_combination():
    assert {p.stem for p in CI_VALUES} == {
        "standard-hpa-values",
        "standard-keda-values",
        "standard-canary-values",
        "knative-kpa-values",
        "knative-canary-values",
        "custom-container-values",
        "other-format-values",
        "monitoring-values",
        "scheduling-values",
        "multi-model-values",
        "stream-values",
        "kafka-eventing-values",
        "batch-job-values",
        "batch-cronjob-values",
        "ports-identity-values",
        "security-values",
    }


@pytest.mark.parametrize("values", RENDERINGS.values(), ids=RENDERINGS.keys())
def test_lint_strict(helm, values):
    result = run([helm, "lint", "--strict", str(CHART), *values])
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", [*RENDERINGS.values(), E2E_VALUES], ids=[*RENDERINGS.keys(), "e2e"])
def test_renders_valid_objects_that_keep_the_v0_20_rules(helm, schema_validator, values):
    objects = helm_template(helm, *values)
    assert [p for o in objects for p in schema_validator.validate(o)] == []
    runtimes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServingRuntime"}
    assert violations(isvc_of(objects), runtimes) == []


def test_defaults_render_a_standard_hpa_deployment_of_our_runtime(helm):
    objects = helm_template(helm)
    assert kinds(objects) == ["ConfigMap", "InferenceService", "Pod", "PodDisruptionBudget", "ServingRuntime"]
    isvc = isvc_of(objects)
    assert isvc["metadata"]["name"] == "demo"  # model.name defaults to the release name
    assert isvc["spec"]["predictor"]["model"]["runtime"] == one(objects, "ServingRuntime")["metadata"]["name"]
    assert "storageUri" not in isvc["spec"]["predictor"]["model"]  # the image's own /mnt/models serves


def test_e2e_values_land_where_kserve_reads_them(helm):
    objects = helm_template(helm, *E2E_VALUES)
    runtime, isvc = runtime_of(objects), isvc_of(objects)
    assert (runtime["image"], runtime["imagePullPolicy"]) == ("localhost/model-server:e2e", "IfNotPresent")
    assert runtime["args"][0] == "--model_name={{.Name}}" and isvc["metadata"]["name"] == "iris"
    stable = isvc["spec"]["predictor"]
    assert (stable["minReplicas"], stable["maxReplicas"], stable["scaleMetric"]) == (1, 3, "cpu")
    assert "storageUri" not in stable["model"] and "args" not in stable["model"]
    (canary,) = isvc["spec"]["canary"]
    assert canary["trafficPercent"] == 20 and canary["predictor"]["name"] == "canary"
    assert canary["predictor"]["model"]["args"] == ["--model_dir=/opt/model-server/demo-v2"]
    assert "minReplicas" not in canary["predictor"]  # KServe: ceil(1 * 20 / 100) = 1


def test_hardening_reaches_the_serving_container_and_the_pod(helm):
    stable = isvc_of(helm_template(helm))["spec"]["predictor"]
    context = stable["model"]["securityContext"]
    assert context["runAsNonRoot"] and context["readOnlyRootFilesystem"] and context["runAsUser"] == 1000
    assert context["capabilities"]["drop"] == ["ALL"] and context["seccompProfile"]["type"] == "RuntimeDefault"
    assert stable["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert stable["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    assert stable["automountServiceAccountToken"] is False


SCHEDULING_VALUES = CHART / "ci" / "scheduling-values.yaml"
# The values that go to the predictor pods (their path in values.yaml), by the predictor field KServe reads them from.
POD_FIELDS = {
    "serviceAccount.name": "serviceAccountName",
    "podLabels": "labels",
    "podAnnotations": "annotations",
    "nodeSelector": "nodeSelector",
    "tolerations": "tolerations",
    "affinity": "affinity",
}


def value_at(values: dict, path: str):
    for key in path.split("."):
        values = values[key]
    return values


def predictors_of(isvc: dict) -> list[dict]:
    """The stable predictor and every Standard-mode canary predictor."""
    return [isvc["spec"]["predictor"]] + [c["predictor"] for c in isvc["spec"].get("canary", [])]


def test_defaults_set_no_scheduling_fields(helm):
    for predictor in predictors_of(isvc_of(helm_template(helm, "--set", "canary.enabled=true"))):
        assert sorted(set(POD_FIELDS.values()) & set(predictor)) == []
        assert predictor["automountServiceAccountToken"] is False


@pytest.mark.parametrize(
    "extra, predictors",
    [
        ([], 2),  # Standard: the stable predictor and spec.canary's
        (KNATIVE, 1),  # Knative: the predictor is the canary revision
        (["--set", "canary.enabled=false", "--set", "customContainer.enabled=true"], 1),
    ],
    ids=["standard-canary", "knative-canary", "custom-container"],
)
def test_scheduling_values_land_on_every_predictor_pod(helm, schema_validator, extra, predictors):
    values = yaml.safe_load(SCHEDULING_VALUES.read_text())
    isvc = isvc_of(helm_template(helm, "-f", str(SCHEDULING_VALUES), *extra))
    assert schema_validator.validate(isvc) == []
    assert len(predictors_of(isvc)) == predictors
    for predictor in predictors_of(isvc):
        assert {value: predictor[field] for value, field in POD_FIELDS.items()} == {
            path: value_at(values, path) for path in POD_FIELDS
        }
        # A service account, but still no API token in the pod.
        assert predictor["automountServiceAccountToken"] is False
    # Pod metadata only: the InferenceService's own would reach every component.
    assert set(values["podAnnotations"]).isdisjoint(isvc["metadata"]["annotations"])
    assert set(values["podLabels"]).isdisjoint(isvc["metadata"]["labels"])


def server_env(predictor: dict) -> list:
    container = predictor.get("model") or predictor["containers"][0]
    return container.get("env", [])


def test_shutdown_and_management_settings_reach_the_server(helm):
    objects = helm_template(helm)
    args = runtime_of(objects)["args"]
    assert args[args.index("--drain_seconds=5") :] == [
        "--drain_seconds=5",
        "--grace_seconds=20",
        "--repository_api=false",
        "--onnx_cache_dir=/tmp/onnx-cache",
        "--require_sha256=true",
    ]
    assert isvc_of(objects)["spec"]["predictor"]["terminationGracePeriodSeconds"] == 30
    assert server_env(isvc_of(objects)["spec"]["predictor"]) == []
    isvc = isvc_of(helm_template(helm, "-f", str(SCHEDULING_VALUES)))
    token = {
        "name": "MODEL_SERVER_MANAGEMENT_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "model-server-management", "key": "token"}},
    }
    for predictor in predictors_of(isvc):
        assert predictor["terminationGracePeriodSeconds"] == 45 and token in server_env(predictor)
    custom = isvc_of(
        helm_template(
            helm, "-f", str(SCHEDULING_VALUES), "--set", "canary.enabled=false", "--set", "customContainer.enabled=true"
        )
    )
    container = custom["spec"]["predictor"]["containers"][0]
    assert (
        token in container["env"]
        and "--drain_seconds=10" in container["args"]
        and "--repository_api=true" in container["args"]
    )
    # Knative: the queue-proxy drains, and Knative sets the pods' grace period.
    assert "terminationGracePeriodSeconds" not in isvc_of(helm_template(helm, *KNATIVE))["spec"]["predictor"]


def test_onnx_session_values_become_the_server_flags(helm):
    defaults = [arg for arg in runtime_of(helm_template(helm))["args"] if arg.startswith("--onnx_")]
    assert defaults == ["--onnx_cache_dir=/tmp/onnx-cache"]  # on the pod's /tmp emptyDir
    assert not any(
        arg.startswith("--onnx_") for arg in runtime_of(helm_template(helm, "--set", "model.onnx.cacheDir="))["args"]
    )
    values = ["intraOpThreads=2", "interOpThreads=3", "graphOptimization=basic", "warmup=true"]
    args = runtime_of(helm_template(helm, *[a for v in values for a in ("--set", f"model.onnx.{v}")]))["args"]
    expected = {"--onnx_intra_op_threads=2", "--onnx_inter_op_threads=3", "--onnx_graph_optimization=basic"}
    assert expected | {"--onnx_warmup=true"} <= set(args)
    # The schema refuses a level ONNX Runtime has not.
    assert "graphOptimization" in helm_template_error(helm, "--set", "model.onnx.graphOptimization=max")


def test_the_onnx_cache_on_a_claim_is_mounted_where_the_server_keeps_it(helm, schema_validator):
    objects = helm_template(
        helm, "--set", "model.onnx.cacheClaimName=onnx-graphs", "--set", "model.onnx.cacheDir=/cache"
    )
    isvc = isvc_of(objects)
    predictor = isvc["spec"]["predictor"]
    assert {"name": "onnx-cache", "persistentVolumeClaim": {"claimName": "onnx-graphs"}} in predictor["volumes"]
    assert {"name": "onnx-cache", "mountPath": "/cache"} in predictor["model"]["volumeMounts"]
    assert "--onnx_cache_dir=/cache" in runtime_of(objects)["args"]
    assert schema_validator.validate(isvc) == []
    message = helm_template_error(
        helm, "--set", "model.onnx.cacheClaimName=onnx-graphs", "--set", "model.onnx.cacheDir="
    )
    assert "model.onnx.cacheClaimName needs model.onnx.cacheDir" in message
    assert "cacheDir" in helm_template_error(helm, "--set", "model.onnx.cacheDir=relative/path")


def test_workers_reach_the_server_with_the_repository_api_too(helm):
    assert "--workers=auto" in runtime_of(helm_template(helm))["args"]
    assert "--workers=3" in runtime_of(helm_template(helm, "--set", "workers=3"))["args"]
    repository_api = ["--set", "server.repositoryApi=true", "--set", "server.managementTokenSecret=token"]
    assert "--workers=auto" in runtime_of(helm_template(helm, *repository_api))["args"]
    assert "--workers=3" in runtime_of(helm_template(helm, *repository_api, "--set", "workers=3"))["args"]
    assert "/workers" in helm_template_error(helm, "--set", "workers=0")


def test_require_sha256_reaches_every_server_it_runs(helm):
    # On by default in the chart (the server's own default stays KServe's); false leaves the flag out.
    lax = ["--set", "model.requireSha256=false"]
    assert not any("--require_sha256" in arg for arg in runtime_of(helm_template(helm, *lax))["args"])
    assert runtime_of(helm_template(helm))["args"][-1] == "--require_sha256=true"
    strict = ["--set", "model.requireSha256=true"]
    assert runtime_of(helm_template(helm, *strict))["args"][-1] == "--require_sha256=true"
    assert (
        "--require_sha256=true" in runtime_of(helm_template(helm, *strict, "--set", "multiModel.enabled=true"))["args"]
    )
    custom = isvc_of(helm_template(helm, "-f", str(CHART / "ci" / "custom-container-values.yaml"), *strict))
    assert "--require_sha256=true" in custom["spec"]["predictor"]["containers"][0]["args"]
    custom_canary = isvc_of(
        helm_template(
            helm,
            "-f",
            str(CHART / "ci" / "custom-container-values.yaml"),
            *strict,
            *KNATIVE,
            "--set",
            "canary.enabled=true",
        )
    )
    assert "--require_sha256=true" in custom_canary["spec"]["predictor"]["containers"][0]["args"]


def test_template_rejects_a_grace_period_shorter_than_the_drain(helm):
    error = helm_template_error(helm, "--set", "terminationGracePeriodSeconds=25")
    assert "terminationGracePeriodSeconds (25) must exceed server.drainSeconds + server.graceSeconds (25)" in error
    helm_template(helm, "--set", "terminationGracePeriodSeconds=25", *KNATIVE)  # not Knative's to check


def test_multi_model_serving_with_trained_models(helm, schema_validator):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "multi-model-values.yaml"))
    runtime = one(objects, "ServingRuntime")
    assert runtime["spec"]["multiModel"] is True
    args = runtime["spec"]["containers"][0]["args"]
    assert {"--model_repository=/mnt/models", "--watch=true", "--repository_api=true"} <= set(args)
    assert "--model_dir=/mnt/models" not in args
    assert "storageUri" not in isvc_of(objects)["spec"]["predictor"]["model"]
    trained = [o for o in objects if o["kind"] == "TrainedModel"]
    assert [(t["metadata"]["name"], t["spec"]["inferenceService"], t["spec"]["model"]["memory"]) for t in trained] == [
        ("iris-v1", "models", "256Mi"),
        ("iris-v2", "models", "256Mi"),
    ]
    assert [p for t in trained for p in schema_validator.validate(t)] == []
    assert "multiModel" not in one(helm_template(helm), "ServingRuntime")["spec"]


@pytest.mark.parametrize(
    "values,message",
    [
        (["--set", "canary.enabled=true"], "multiModel.enabled needs this chart's ServingRuntime"),
        (["--set", "customContainer.enabled=true"], "multiModel.enabled needs this chart's ServingRuntime"),
        (["--set", "server.managementTokenSecret=t"], "KServe's agent loads models through the repository API"),
    ],
)
def test_multi_model_refuses_what_kserve_cannot_do_with_it(helm, values, message):
    assert message in helm_template_error(helm, "--set", "multiModel.enabled=true", *values)


def test_hpa_values(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "standard-hpa-values.yaml"))
    isvc = isvc_of(objects)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
    p = isvc["spec"]["predictor"]
    assert (p["minReplicas"], p["maxReplicas"], p["scaleMetric"], p["scaleTarget"]) == (2, 6, "cpu", 60)
    assert p["model"]["storageUri"] == "gs://kfserving-examples/models/sklearn/1.0/model"


def test_keda_query_targets_this_release_stable_pods(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "standard-keda-values.yaml"), namespace="prod")
    p = isvc_of(objects)["spec"]["predictor"]
    (metric,) = p["autoScaling"]["metrics"]
    external = metric["external"]
    assert external["metric"]["query"] == (
        'sum(rate(model_server_requests_total{namespace="prod",pod=~"iris-predictor-.*"}[1m]))'
    )
    assert external["target"] == {"type": "Value", "value": "40"}
    assert (p["minReplicas"], p["maxReplicas"]) == (1, 8) and "scaleMetric" not in p


def test_keda_query_can_be_replaced(helm):
    query = "sum(rate(envoy_requests_total[1m]))"
    objects = helm_template(
        helm,
        "--set",
        "autoscaling.class=keda",
        "--set",
        f"autoscaling.keda.query={query}",
        "--set",
        "autoscaling.minReplicas=0",
    )
    p = isvc_of(objects)["spec"]["predictor"]
    assert p["autoScaling"]["metrics"][0]["external"]["metric"]["query"] == query and p["minReplicas"] == 0


def test_kpa_values_and_scale_to_zero(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "knative-kpa-values.yaml"))
    isvc = isvc_of(objects)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    assert "serving.kserve.io/autoscalerClass" not in isvc["metadata"]["annotations"]
    p = isvc["spec"]["predictor"]
    assert (p["minReplicas"], p["maxReplicas"], p["scaleMetric"], p["scaleTarget"]) == (0, 5, "concurrency", 4)
    # Knative accepts one port: REST only.
    assert [port["name"] for port in runtime_of(objects)["ports"]] == ["http1"]


def test_knative_grpc_exposes_only_h2c(helm):
    objects = helm_template(helm, *KNATIVE, "--set", "model.protocolVersion=grpc-v2")
    runtime = runtime_of(objects)
    assert runtime["ports"] == [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
    assert "readinessProbe" not in runtime  # an HTTP probe on a port Knative does not expose would fail


def test_knative_canary_is_canary_traffic_percent_on_the_new_version(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "knative-canary-values.yaml"))
    isvc = isvc_of(objects)
    assert "canary" not in isvc["spec"]
    p = isvc["spec"]["predictor"]
    assert p["canaryTrafficPercent"] == 25
    assert p["model"]["storageUri"] == "gs://kfserving-examples/models/sklearn/1.0/model-2"


def test_canary_settings_default_to_the_stable_ones_and_args_follow_them(helm):
    objects = helm_template(
        helm,
        "--set",
        "canary.enabled=true",
        "--set",
        "model.storageUri=s3://m/v1",
        "--set",
        "model.extraArgs={--max_batch_size=64}",
        "--set",
        "canary.image.tag=0.2.0",
        "--set",
        "canary.extraArgs={--model_dir=/opt/model-server/demo-v2}",
    )
    model = isvc_of(objects)["spec"]["canary"][0]["predictor"]["model"]
    assert model["storageUri"] == "s3://m/v1"
    assert model["image"] == "model-server:0.2.0"
    assert model["args"] == ["--max_batch_size=64", "--model_dir=/opt/model-server/demo-v2"]


def test_canary_replicas_are_fixed_and_bounded(helm):
    objects = helm_template(
        helm,
        "--set",
        "canary.enabled=true",
        "--set",
        "canary.replicas=2",
        "--set",
        "autoscaling.minReplicas=2",
        "--set",
        "autoscaling.maxReplicas=4",
    )
    assert isvc_of(objects)["spec"]["canary"][0]["predictor"]["minReplicas"] == 2
    error = helm_template_error(helm, "--set", "canary.enabled=true", "--set", "canary.replicas=3")
    assert "must not exceed the stable predictor's minReplicas" in error


@pytest.mark.parametrize("mode", [[], KNATIVE], ids=["standard", "knative"])
def test_promote_serves_the_canary_version_as_stable_and_rollback_the_old_one(helm, mode):
    v2 = ["--set", "model.storageUri=s3://m/v2"]
    with_canary = isvc_of(
        helm_template(
            helm,
            *mode,
            "--set",
            "model.storageUri=s3://m/v1",
            "--set",
            "canary.enabled=true",
            "--set",
            "canary.storageUri=s3://m/v2",
        )
    )
    promoted = isvc_of(helm_template(helm, *mode, *v2))
    rolled_back = isvc_of(helm_template(helm, *mode, "--set", "model.storageUri=s3://m/v1"))
    if mode:  # Knative: the canary version is the predictor spec; promotion drops only the split
        assert with_canary["spec"]["predictor"]["model"] == promoted["spec"]["predictor"]["model"]
        assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    else:  # Standard: the stable predictor takes over the canary's model, the canary goes away
        assert with_canary["spec"]["canary"][0]["predictor"]["model"]["storageUri"] == "s3://m/v2"
        assert with_canary["spec"]["predictor"]["model"]["storageUri"] == "s3://m/v1"
    assert promoted["spec"]["predictor"]["model"]["storageUri"] == "s3://m/v2" and "canary" not in promoted["spec"]
    assert rolled_back["spec"]["predictor"]["model"]["storageUri"] == "s3://m/v1"
    assert "canary" not in rolled_back["spec"] and "canaryTrafficPercent" not in rolled_back["spec"]["predictor"]


def test_custom_container_runs_the_image_without_a_runtime(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "custom-container-values.yaml"))
    assert "ServingRuntime" not in kinds(objects)
    (container,) = isvc_of(objects)["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container" and container["image"] == "model-server:0.1.0"
    assert container["args"] == [
        "--model_name=iris",
        "--model_dir=/mnt/models",
        "--http_port=8080",
        "--grpc_port=8081",
        "--workers=auto",
        "--drain_seconds=5",
        "--grace_seconds=20",
        "--repository_api=false",
        "--onnx_cache_dir=/tmp/onnx-cache",
        "--require_sha256=true",
        "--max_batch_size=64",
    ]
    assert {"name": "STORAGE_URI", "value": "gs://kfserving-examples/models/sklearn/1.0/model"} in container["env"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http1", 8080), ("h2c", 8081)]


def test_other_model_format_goes_to_its_own_runtime(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "other-format-values.yaml"))
    assert "ServingRuntime" not in kinds(objects) and "Pod" not in kinds(objects)
    model = isvc_of(objects)["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "tensorflow", "version": "2"}
    assert model["runtime"] == "kserve-tensorflow-serving"
    assert model["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}


def test_other_format_without_runtime_lets_kserve_auto_select(helm):
    objects = helm_template(helm, "--set", "servingRuntime.enabled=false", "--set", "model.format=onnx")
    assert "runtime" not in isvc_of(objects)["spec"]["predictor"]["model"]


def test_monitor_needs_the_api_or_force(helm):
    assert "ServiceMonitor" not in kinds(helm_template(helm))
    api = ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]
    assert "ServiceMonitor" in kinds(helm_template(helm, *api))
    assert "ServiceMonitor" not in kinds(helm_template(helm, *api, "--set", "monitoring.serviceMonitor.enabled=false"))
    assert "ServiceMonitor" in kinds(helm_template(helm, "--set", "monitoring.serviceMonitor.force=true"))


@pytest.mark.parametrize(
    "values",
    [
        ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"],
        [*KNATIVE, "--api-versions", "monitoring.coreos.com/v1/PodMonitor"],
    ],
    ids=["service-monitor", "pod-monitor"],
)
def test_monitors_validate_strictly_against_the_prometheus_operator_crds(helm, schema_validator, values):
    monitors = [o for o in helm_template(helm, *values) if o["apiVersion"] == "monitoring.coreos.com/v1"]
    assert len(monitors) == 1 and [p for o in monitors for p in schema_validator.validate(o)] == []


def test_monitor_standard_scrapes_kserve_predictor_services(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "monitoring-values.yaml"))
    monitor = one(objects, "ServiceMonitor")
    assert set(monitor["spec"]) == {"selector", "endpoints"}
    # KServe labels the predictor Services (stable and canary) with these.
    assert monitor["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "iris",
        "component": "predictor",
    }
    # KServe names the Service's first port after the container's first port.
    assert monitor["spec"]["endpoints"] == [
        {"port": runtime_of(objects)["ports"][0]["name"], "path": "/metrics", "interval": "15s"}
    ]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_monitor_knative_scrapes_the_pods_user_port(helm):
    objects = helm_template(helm, *KNATIVE, "--api-versions", "monitoring.coreos.com/v1/PodMonitor")
    monitor = one(objects, "PodMonitor")
    # Knative renames the user container's port to user-port whatever it was called.
    assert monitor["spec"]["podMetricsEndpoints"] == [{"port": "user-port", "path": "/metrics", "interval": "30s"}]


def test_pdb_and_network_policy_select_the_predictor_pods(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "monitoring-values.yaml"))
    pod_labels = {"serving.kserve.io/inferenceservice": "iris", "component": "predictor"}
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": pod_labels}}
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == pod_labels and policy["spec"]["policyTypes"] == ["Ingress"]
    callers, prometheus = policy["spec"]["ingress"]
    # No "every pod of the namespace": the helm test pod, the labelled clients, the gateway's namespace.
    assert {"podSelector": {}} not in callers["from"]
    test_pod = one(helm_template(helm, "-f", str(CHART / "ci" / "monitoring-values.yaml")), "Pod")
    selectors = [s["podSelector"]["matchLabels"] for s in callers["from"] if "podSelector" in s]
    assert all(test_pod["metadata"]["labels"][k] == v for k, v in selectors[0].items())
    assert selectors[1:] == [{"model-client": "true"}]
    namespaces = [s["namespaceSelector"]["matchLabels"] for s in callers["from"] if "namespaceSelector" in s]
    assert namespaces == [{"kubernetes.io/metadata.name": "istio-system"}]
    # Prometheus: its pods in its namespace, to the HTTP port (/metrics) only.
    assert prometheus == {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }


SECURITY_VALUES = CHART / "ci" / "security-values.yaml"


def test_tls_and_auth_reach_the_server_its_volumes_and_probes(helm, schema_validator):
    objects = helm_template(helm, "-f", str(SECURITY_VALUES))
    assert [p for o in objects for p in schema_validator.validate(o)] == []
    runtime, isvc = runtime_of(objects), isvc_of(objects)
    args = runtime["args"]
    for flag in (
        "--tls_cert=/etc/model-server/tls/tls.crt",
        "--tls_key=/etc/model-server/tls/tls.key",
        "--tls_client_ca=/etc/model-server/client-ca/ca.crt",
        "--auth=jwt",
        "--auth_jwks=/etc/model-server/jwks/jwks.json",
        "--auth_jwt_issuer=https://login.example.com/",
        "--auth_jwt_audience=iris",
        "--auth_metrics=true",
        "--repository_api=true",
    ):
        assert flag in args, flag
    predictor = isvc["spec"]["predictor"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in predictor["volumes"] if "secret" in v}
    assert secrets == {"tls": "iris-tls", "client-ca": "iris-tls", "jwks": "iris-jwks"}
    mounts = {m["name"]: m["mountPath"] for m in predictor["model"]["volumeMounts"] if m.get("readOnly")}
    assert mounts == {
        "tls": "/etc/model-server/tls",
        "client-ca": "/etc/model-server/client-ca",
        "jwks": "/etc/model-server/jwks",
    }
    # Mutual TLS: the kubelet has no client certificate, the probe runs in the container with the pod's own.
    probe = runtime["readinessProbe"]["exec"]["command"]
    assert probe[0] == "python" and probe[3:] == [
        "https://127.0.0.1:8080/v2/health/ready",
        "/etc/model-server/tls/tls.crt",
        "/etc/model-server/tls/tls.key",
    ]
    # TLS alone: the kubelet's HTTPS probes.
    plain_tls = runtime_of(helm_template(helm, "--set", "tls.secretName=iris-tls"))
    assert plain_tls["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080, "scheme": "HTTPS"}
    assert plain_tls["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert "scheme" not in runtime_of(helm_template(helm))["readinessProbe"]["httpGet"]
    # The helm test calls over HTTPS with the Secret's CA and certificate, and sends its token.
    test = one(objects, "Pod")["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in test["env"]}
    assert env["BASE_URL"] == "https://iris-predictor.models.svc.cluster.local:80"
    assert env["CA_FILE"] == "/etc/model-server/tls/ca.crt" and env["CLIENT_CERT"] == "/etc/model-server/tls/tls.crt"
    assert env["TOKEN_FILE"] == "/etc/model-server/test-credential/token"
    pod = one(objects, "Pod")["spec"]
    assert {"name": "test-credential", "secret": {"secretName": "iris-test-token"}} in pod["volumes"]
    assert {"name": "test-credential", "mountPath": "/etc/model-server/test-credential", "readOnly": True} in test[
        "volumeMounts"
    ]


def test_api_key_mode_mounts_the_hashed_keys(helm):
    values = [
        "--set",
        "auth.mode=api_key",
        "--set",
        "auth.apiKeys.secretName=iris-keys",
        "--set",
        "helmTest.enabled=false",
    ]
    objects = helm_template(helm, *values)
    assert runtime_of(objects)["args"][-2:] == [
        "--auth=api_key",
        "--auth_api_keys_file=/etc/model-server/api-keys/api-keys",
    ]
    volumes = isvc_of(objects)["spec"]["predictor"]["volumes"]
    assert {"name": "api-keys", "secret": {"secretName": "iris-keys"}} in volumes
    url = [
        "--set",
        "auth.mode=jwt",
        "--set",
        "auth.jwt.jwksUrl=https://login.example.com/jwks",
        "--set",
        "auth.jwt.issuer=i",
    ]
    jwt = runtime_of(helm_template(helm, *url, "--set", "auth.jwt.audience=a", "--set", "helmTest.enabled=false"))
    assert "--auth_jwks=https://login.example.com/jwks" in jwt["args"]


@pytest.mark.parametrize(
    "values, message",
    [
        (["--set", "auth.mode=api_key"], "'/auth/apiKeys/secretName': minLength: got 0, want 1"),
        (
            ["--set", "auth.mode=jwt", "--set", "auth.jwt.jwksUrl=https://a/j", "--set", "auth.jwt.audience=a"],
            "'/auth/jwt/issuer': minLength",
        ),
        (
            ["--set", "auth.mode=jwt", "--set", "auth.jwt.issuer=i", "--set", "auth.jwt.audience=a"],
            "'/auth/jwt': 'oneOf' failed",
        ),
        (["--set", "auth.mode=oauth"], "'/auth/mode': value must be one of 'none', 'api_key', 'jwt'"),
        (["--set", "auth.jwt.jwksUrl=ftp://x"], "'/auth/jwt/jwksUrl'"),
        (["--set", "tls.clientCaSecretName=ca"], "'/tls/secretName': minLength: got 0, want 1"),
        (["--set", "tls.secretName=Bad_Name"], "'/tls/secretName': 'Bad_Name' does not match pattern"),
        (["--set", "server.repositoryApi=true"], "server.repositoryApi needs server.managementTokenSecret"),
        ([*KNATIVE, "--set", "tls.secretName=iris-tls"], "tls.secretName in Knative mode"),
        (
            ["--set", "auth.mode=api_key", "--set", "auth.apiKeys.secretName=k"],
            "helmTest.enabled with auth.mode api_key needs helmTest.credentialSecret",
        ),
        (
            [
                "--set",
                "multiModel.enabled=true",
                "--set",
                "auth.mode=api_key",
                "--set",
                "auth.apiKeys.secretName=k",
                "--set",
                "helmTest.enabled=false",
            ],
            "KServe's agent loads models through the repository API and sends no credential",
        ),
    ],
)
def test_tls_and_auth_half_configured_are_refused(helm, values, message):
    assert message in helm_template_error(helm, *values)


def test_dashboard_configmap_for_the_grafana_sidecar(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "monitoring-values.yaml"))
    (dashboard,) = [o for o in objects if o["kind"] == "ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    titles = [panel["title"] for panel in json.loads(dashboard["data"]["model-server.json"])["panels"]]
    assert titles == [
        "Request rate",
        "Errors",
        "Predict latency",
        "Batch size (rows per estimator call)",
        "Request rate by pod (stable vs canary)",
        "Request rate by model version",
        "Errors by model version",
        "Drift: feature PSI",
        "Drift: prediction PSI and missing features",
        "Payload log events",
    ]


def test_helm_test_pod_sends_a_v2_request_to_the_predictor(helm):
    pod = one(helm_template(helm, "--set", "model.name=iris", namespace="prod"), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "BASE_URL": "http://iris-predictor.prod.svc.cluster.local",
        "MODEL_NAME": "iris",
        "PROTOCOL": "v2",
        "INSTANCES": "[[5.1,3.5,1.4,0.2]]",
    }
    assert container["command"][:2] == ["python", "-c"]
    assert container["command"][2] == (CHART / "files" / "smoke_request.py").read_text()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize(
    "values, expected",
    [
        (["--set", "deploymentMode=Serverless"], "'/deploymentMode': value must be one of 'Standard', 'Knative'"),
        (["--set", "autoscaling.minReplicas=two"], "'/autoscaling/minReplicas': got string, want integer"),
        (["--set", "canary.trafficPercent=150"], "'/canary/trafficPercent': maximum"),
        (["--set", "autoscaling.class=kpa"], "value must be one of 'hpa', 'keda', 'none', 'external'"),
        (["--set", "deploymentMode=Knative"], "'/autoscaling/class': value must be 'kpa'"),
        (["--set", "autoscaling.minReplicas=0"], "'/autoscaling/minReplicas': minimum: got 0, want 1"),
        (["--set", "autoscaling.class=none", "--set", "autoscaling.minReplicas=0"], "minimum: got 0, want 1"),
        (["--set", "model.format=tensorflow"], "'/model/format': value must be 'sklearn'"),
        (["--set", "model.name=Iris_Model"], "'/model/name'"),
        (["--set", "model.requireSha256=yes"], "'/model/requireSha256': got string, want boolean"),
        (["--set", "autoscaling.kpa.metric=latency"], "'/autoscaling/kpa/metric'"),
        (["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
        (["--set", "nodeSelector.disk=1"], "'/nodeSelector/disk': got number, want string"),
        (["--set", "podAnnotations.replicas=3"], "'/podAnnotations/replicas': got number, want string"),
        (["--set", "podLabels.team=-ml-"], "'/podLabels/team': '-ml-' does not match pattern"),
        (["--set", "podLabels.a b=x"], "invalid propertyName 'a b'"),
        (["--set", "serviceAccount.name=Model_SA"], "'/serviceAccount/name': 'Model_SA' does not match pattern"),
        (["--set", "serviceAccount.create=yes"], "'/serviceAccount/create': got string, want boolean"),
        (["--set", "serviceAccount.automount=1"], "'/serviceAccount/automount': got number, want boolean"),
        (["--set", "serviceAccount.token=x"], "'/serviceAccount': additional properties 'token' not allowed"),
        (["--set", "serviceAccountName=models"], "additional properties 'serviceAccountName' not allowed"),
        (["--set", "containerPorts.http=0"], "'/containerPorts/http': minimum: got 0, want 1"),
        (["--set", "containerPorts.grpc=65536"], "'/containerPorts/grpc': maximum: got 65,536, want 65,535"),
        (["--set", "containerPorts.http=http"], "'/containerPorts/http': got string, want integer"),
        (["--set", "containerPorts.metrics=9090"], "'/containerPorts': additional properties 'metrics' not allowed"),
        (["--set", "commonLabels.team=-ml-"], "'/commonLabels/team': '-ml-' does not match pattern"),
        (["--set", "commonAnnotations.replicas=3"], "'/commonAnnotations/replicas': got number, want string"),
        (["--set", "tolerations[0].operator=Exist"], "'/tolerations/0/operator': value must be one of"),
        (["--set", "tolerations[0].operator=Exists,tolerations[0].value=x"], "'/tolerations/0/value'"),
        (["--set", "tolerations[0].effect=NoRun"], "'/tolerations/0/effect': value must be one of"),
        (["--set", "tolerations[0].taint=x"], "additional properties 'taint' not allowed"),
        (["--set", "affinity.nodeSelector.x=y"], "'/affinity': additional properties 'nodeSelector' not allowed"),
    ],
)
def test_schema_rejects_bad_values(helm, values, expected):
    assert expected in helm_template_error(helm, *values)


def test_template_rejects_max_below_min(helm):
    error = helm_template_error(helm, "--set", "autoscaling.minReplicas=3", "--set", "autoscaling.maxReplicas=2")
    assert "autoscaling.maxReplicas (2) must be >= autoscaling.minReplicas (3)" in error


def test_template_rejects_standard_canary_of_a_custom_container(helm):
    error = helm_template_error(helm, "--set", "customContainer.enabled=true", "--set", "canary.enabled=true")
    assert "a Standard-mode canary needs a model predictor" in error


def test_notes_show_the_call_for_the_mode(helm):
    standard = run([helm, "install", "iris", str(CHART), "--dry-run=client", "-n", "prod"]).stdout
    assert "port-forward service/iris-predictor 8080:80" in standard
    assert "localhost:8080/v2/models/iris/infer" in standard and "helm test iris -n prod" in standard
    knative = run([helm, "install", "iris", str(CHART), "--dry-run=client", *KNATIVE, "--set", "canary.enabled=true"])
    assert "$URL/v2/models/iris/infer" in knative.stdout and 'Canary "canary" gets 10%' in knative.stdout


def test_a_digest_tag_pins_both_versions_by_digest(helm):
    digest = "sha256:" + "a" * 64
    objects = helm_template(
        helm,
        "--set",
        f"image.tag={digest}",
        "--set",
        "canary.enabled=true",
        "--set",
        "canary.image.repository=registry.example/model-server",
    )
    assert runtime_of(objects)["image"] == f"model-server@{digest}"
    assert (
        isvc_of(objects)["spec"]["canary"][0]["predictor"]["model"]["image"]
        == f"registry.example/model-server@{digest}"
    )


def test_every_object_is_in_the_release_namespace(helm):
    objects = helm_template(helm, "-f", str(CHART / "ci" / "monitoring-values.yaml"), namespace="prod")
    namespaces = {o["kind"]: o["metadata"]["namespace"] for o in objects}
    assert namespaces == {
        "ConfigMap": "monitoring",
        "InferenceService": "prod",
        "NetworkPolicy": "prod",
        "Pod": "prod",
        "PodDisruptionBudget": "prod",
        "ServiceMonitor": "prod",
        "ServingRuntime": "prod",
    }


PAYLOAD_LOG = ["--set", "payloadLog.mode=all", "--set", "payloadLog.sink=kafka://kafka.default:9092/payloads"]
KSERVE_LOGGER = ["--set", "kserveLogger.enabled=true", "--set", "kserveLogger.url=http://receiver.default"]


def test_payload_log_values_reach_every_server_and_kserve_s_logger_renders(helm, schema_validator):
    assert not any(arg.startswith("--log_") for arg in runtime_of(helm_template(helm))["args"])
    assert "logger" not in isvc_of(helm_template(helm))["spec"]["predictor"]
    objects = helm_template(helm, *PAYLOAD_LOG, "--set-json", "payloadLog.sampleRate=0.5", *KSERVE_LOGGER)
    assert [p for o in objects for p in schema_validator.validate(o)] == []
    args = runtime_of(objects)["args"]
    assert "--log_payloads=all" in args and "--log_sink=kafka://kafka.default:9092/payloads" in args
    assert "--log_sample_rate=0.5" in args
    assert isvc_of(objects)["spec"]["predictor"]["logger"] == {"url": "http://receiver.default", "mode": "all"}
    custom = isvc_of(helm_template(helm, *PAYLOAD_LOG, "--set", "customContainer.enabled=true"))
    assert "--log_payloads=all" in custom["spec"]["predictor"]["containers"][0]["args"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "payloadLog.mode=all"], "payloadLog.mode all needs payloadLog.sink"),
        (["--set", "kserveLogger.enabled=true"], "kserveLogger.enabled needs kserveLogger.url"),
        (["--set", "payloadLog.mode=sometimes"], "/payloadLog/mode"),
        (["--set", "payloadLog.sampleRate=2"], "sampleRate"),
    ],
)
def test_payload_log_values_that_cannot_work_are_refused(helm, values, message):
    assert message in helm_template_error(helm, *values)


def test_drift_alert_renders_when_the_prometheus_operator_serves_rules(helm):
    assert "PrometheusRule" not in kinds(helm_template(helm))
    objects = helm_template(
        helm, "--api-versions", "monitoring.coreos.com/v1/PrometheusRule", "--set", "model.name=iris"
    )
    rule = one(objects, "PrometheusRule")
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) == {"ModelServerFeatureDrift", "ModelServerPredictionDrift"}
    feature = alerts["ModelServerFeatureDrift"]
    assert feature["for"] == "10m" and feature["labels"] == {"severity": "warning"}
    assert 'model_server_feature_drift{namespace="models", model="iris", method="psi"}' in feature["expr"]
    assert feature["expr"].endswith(">= 0.25") and "{{ $labels.feature }}" in feature["annotations"]["summary"]
    tuned = one(
        helm_template(
            helm,
            "--set",
            "monitoring.driftAlert.force=true",
            "--set-json",
            "monitoring.driftAlert.threshold=0.1",
            "--set",
            "monitoring.driftAlert.for=30m",
        ),
        "PrometheusRule",
    )
    rules = tuned["spec"]["groups"][0]["rules"]
    assert all(r["expr"].endswith(">= 0.1") and r["for"] == "30m" for r in rules)
    off = ["--set", "monitoring.driftAlert.enabled=false", "--set", "monitoring.driftAlert.force=true"]
    assert "PrometheusRule" not in kinds(helm_template(helm, *off))


def test_drift_alert_validates_against_the_prometheusrule_crd(helm, schema_validator):
    """Strictly, like the ServiceMonitor, once the official PrometheusRule CRD is among the
    third-party CRDs (CRDS_DIR); promtool checks its rules below either way."""
    if ("monitoring.coreos.com/v1", "PrometheusRule") not in schema_validator.kserve_kinds():
        pytest.skip(
            f"the Prometheus Operator's PrometheusRule CRD (monitoring.coreos.com_prometheusrules.yaml) is not in "
            f"{third_party_crds_dir()}"
        )
    rule = one(helm_template(helm, "--set", "monitoring.driftAlert.force=true"), "PrometheusRule")
    assert schema_validator.validate(rule) == []


def test_drift_alert_rules_pass_promtool(helm, tmp_path):
    """promtool (Prometheus' own checker) parses the rendered rules and their PromQL. (The
    PrometheusRule CRD itself is not among ../shared/crds.)"""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian's prometheus package)")
    rule = one(helm_template(helm, "--set", "monitoring.driftAlert.force=true"), "PrometheusRule")
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump(rule["spec"]))
    result = run([promtool, "check", "rules", str(rules)])
    assert "SUCCESS: 2 rules found" in result.stdout
