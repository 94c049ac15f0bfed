"""The kustomize tree: every overlay builds with the real kubectl, validates strictly and keeps the v0.20 rules."""

from __future__ import annotations

import pytest

from .kserve_rules import runtime_violations, violations
from .rendering import MANIFESTS, OVERLAYS, kinds, kustomize, one

MODEL_OVERLAYS = {
    "standard",
    "knative",
    "canary-knative",
    "canary-standard",
    "keda",
    "custom-container",
    "grpc",
    "multi-model",
    "kafka-eventing",
}
# Overlays that deploy no InferenceService (the KServe rules do not apply to them).
JOB_OVERLAYS = {"batch-job"}
EXPECTED_OVERLAYS = MODEL_OVERLAYS | JOB_OVERLAYS


@pytest.fixture(scope="module")
def built(kubectl):
    """Overlay name -> rendered objects (plus the runtime-only directories)."""
    dirs = {p.name: p for p in OVERLAYS} | {d: MANIFESTS / d for d in ("runtime", "cluster-runtime", "base")}
    return {name: kustomize(kubectl, path) for name, path in dirs.items()}


def predictor(built, overlay):
    return one(built[overlay], "InferenceService")["spec"]["predictor"]


def annotations(built, overlay):
    return one(built[overlay], "InferenceService")["metadata"]["annotations"]


def test_every_overlay_the_issue_asks_for_exists():
    assert {p.name for p in OVERLAYS} == EXPECTED_OVERLAYS


@pytest.mark.parametrize("name", sorted(EXPECTED_OVERLAYS | {"runtime", "cluster-runtime", "base"}))
def test_builds_and_validates_strictly(built, schema_validator, name):
    objects = built[name]
    assert objects, f"{name} renders nothing"
    problems = [p for obj in objects for p in schema_validator.validate(obj)]
    assert problems == []


@pytest.mark.parametrize("name", sorted(MODEL_OVERLAYS))
def test_keeps_the_v0_20_rules(built, name):
    runtimes = {o["metadata"]["name"]: o for o in built[name] if o["kind"] == "ServingRuntime"}
    assert violations(one(built[name], "InferenceService"), runtimes) == []


@pytest.mark.parametrize("name", ["runtime", "cluster-runtime"])
def test_runtime_keeps_kserve_template_and_outranks_builtin_sklearn(built, name):
    (runtime,) = built[name]
    assert runtime_violations(runtime) == []
    assert runtime["spec"]["containers"][0]["args"][0] == "--model_name={{.Name}}"


def test_cluster_runtime_is_the_same_runtime_cluster_wide(built):
    (namespaced,), (cluster,) = built["runtime"], built["cluster-runtime"]
    assert cluster["kind"] == "ClusterServingRuntime"
    assert cluster["spec"] == namespaced["spec"] and cluster["metadata"]["name"] == namespaced["metadata"]["name"]


def test_base_names_our_runtime_and_pins_the_image(built):
    model = predictor(built, "base")["model"]
    assert model == {**model, "modelFormat": {"name": "sklearn"}, "runtime": "model-server"}
    assert model["storageUri"].startswith("gs://")
    assert one(built["base"], "ServingRuntime")["spec"]["containers"][0]["image"] == "model-server:0.1.0"


def test_runtime_is_hardened(built):
    (runtime,) = built["runtime"]
    container = runtime["spec"]["containers"][0]
    context = container["securityContext"]
    assert context["runAsNonRoot"] and context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"]
    assert context["capabilities"]["drop"] == ["ALL"] and context["seccompProfile"]["type"] == "RuntimeDefault"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_standard_is_hpa_on_cpu(built):
    assert annotations(built, "standard")["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations(built, "standard")["serving.kserve.io/autoscalerClass"] == "hpa"
    p = predictor(built, "standard")
    assert (p["scaleMetric"], p["minReplicas"], p["scaleTarget"]) == ("cpu", 1, 70) and p["maxReplicas"] > 1


def test_knative_scales_on_concurrency_to_zero(built):
    assert annotations(built, "knative")["serving.kserve.io/deploymentMode"] == "Knative"
    p = predictor(built, "knative")
    assert (p["scaleMetric"], p["minReplicas"]) == ("concurrency", 0) and p["scaleTarget"] > 0


def test_canary_knative_sends_part_of_the_traffic_to_a_new_model(built):
    canary, stable = predictor(built, "canary-knative"), predictor(built, "knative")
    assert canary["canaryTrafficPercent"] == 10
    assert canary["model"]["storageUri"] != stable["model"]["storageUri"]
    assert {k: v for k, v in canary.items() if k not in ("canaryTrafficPercent", "model")} == {
        k: v for k, v in stable.items() if k != "model"
    }


def test_canary_standard_uses_spec_canary(built):
    isvc = one(built["canary-standard"], "InferenceService")
    (canary,) = isvc["spec"]["canary"]
    assert canary["trafficPercent"] == 10 and canary["predictor"]["name"] == "canary"
    assert canary["predictor"]["model"]["storageUri"] != isvc["spec"]["predictor"]["model"]["storageUri"]
    assert "canaryTrafficPercent" not in isvc["spec"]["predictor"]


def test_keda_scales_on_our_request_rate(built):
    assert annotations(built, "keda")["serving.kserve.io/autoscalerClass"] == "keda"
    p = predictor(built, "keda")
    (metric,) = p["autoScaling"]["metrics"]
    assert metric["type"] == "External" and metric["external"]["metric"]["backend"] == "prometheus"
    assert "model_server_requests_total" in metric["external"]["metric"]["query"]
    assert 'pod=~"iris-predictor-.*"' in metric["external"]["metric"]["query"]
    assert metric["external"]["target"]["value"] == "50"
    assert "scaleMetric" not in p


def test_custom_container_is_kserve_container_with_h2c(built):
    objects = built["custom-container"]
    assert kinds(objects) == ["InferenceService"]  # no unused runtime
    p = predictor(built, "custom-container")
    (container,) = p["containers"]
    assert "model" not in p and container["name"] == "kserve-container"
    assert {"name": "h2c", "containerPort": 8081, "protocol": "TCP"} in container["ports"]
    assert {"name": "STORAGE_URI", "value": predictor(built, "base")["model"]["storageUri"]} in container["env"]
    assert container["image"] == "model-server:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_grpc_serves_rest_and_h2c(built):
    ports = one(built["grpc"], "ServingRuntime")["spec"]["containers"][0]["ports"]
    assert [(p["name"], p["containerPort"]) for p in ports] == [("http1", 8080), ("h2c", 8081)]
    assert predictor(built, "grpc")["model"]["protocolVersion"] == "grpc-v2"


def test_multi_model_overlay_serves_trained_models(built):
    objects = built["multi-model"]
    runtime = one(objects, "ServingRuntime")
    assert runtime["spec"]["multiModel"] is True
    assert "--model_repository=/mnt/models" in runtime["spec"]["containers"][0]["args"]
    isvc = one(objects, "InferenceService")
    assert isvc["metadata"]["name"] == "models" and "storageUri" not in isvc["spec"]["predictor"]["model"]
    trained = one(objects, "TrainedModel")
    assert trained["spec"]["inferenceService"] == "models" and trained["spec"]["model"]["framework"] == "sklearn"


def test_kafka_eventing_keeps_the_reply_and_routes_it_to_the_output_topic(built):
    objects = built["kafka-eventing"]
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    isvc = one(objects, "InferenceService")
    source = by_name["KafkaSource", "iris-requests"]["spec"]
    assert source["sink"]["ref"] == {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "iris"}
    requests, replies = by_name["Trigger", "iris-requests"]["spec"], by_name["Trigger", "iris-replies"]["spec"]
    assert requests["filter"]["attributes"] == {"type": "dev.knative.kafka.event"}
    assert requests["subscriber"]["ref"]["name"] == isvc["metadata"]["name"]
    assert requests["subscriber"]["uri"] == f"/v2/models/{isvc['metadata']['name']}/infer"
    assert replies["filter"]["attributes"] == {
        "type": "io.kserve.inference.response",
        "source": "io.kserve.inference.iris",
    }
    assert by_name["KafkaSink", replies["subscriber"]["ref"]["name"]]["spec"]["topic"] == "iris-responses"
    dead_letters = requests["delivery"]["deadLetterSink"]["ref"]["name"]
    assert by_name["KafkaSink", dead_letters]["spec"]["topic"] == "iris-errors"
    assert annotations(built, "kafka-eventing")["serving.kserve.io/deploymentMode"] == "Standard"


def test_batch_job_is_an_indexed_job_hardened_like_the_runtime(built):
    (job,) = built["batch-job"]
    assert job["kind"] == "Job" and job["metadata"]["name"] == "iris-batch-run-1"
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 4
    pod = spec["template"]["spec"]
    (scorer,) = pod["containers"]
    assert scorer["command"] == ["/opt/venv/bin/python", "-m", "model_server.batch"]
    assert {"name": "MODEL_SERVER_SHARD_COUNT", "value": "4"} in scorer["env"]
    assert scorer["image"] == "model-server:0.1.0"
    runtime = one(built["runtime"], "ServingRuntime")["spec"]["containers"][0]
    for container in [*pod["initContainers"], scorer]:
        assert container["securityContext"] == runtime["securityContext"]
    (init,) = pod["initContainers"]
    assert init["args"][0] == predictor(built, "base")["model"]["storageUri"]
