"""The checks the other tests rely on reject what they must: strict schemas and the v0.20 rules."""

from __future__ import annotations

import copy

import pytest

from .kserve_rules import violations
from .rendering import MANIFESTS, helm_template, kustomize, one


@pytest.fixture(scope="module")
def canary_standard(kubectl):
    return kustomize(kubectl, MANIFESTS / "overlays" / "canary-standard")


def test_kserve_crd_rejects_an_unknown_field(schema_validator, canary_standard):
    isvc = copy.deepcopy(one(canary_standard, "InferenceService"))
    assert schema_validator.validate(isvc) == []
    isvc["spec"]["predictor"]["minReplica"] = 1  # typo of minReplicas
    problems = schema_validator.validate(isvc)
    assert len(problems) == 1 and "minReplica" in problems[0], problems


def test_kserve_crd_rejects_a_canary_model_without_container_name(schema_validator, canary_standard):
    # The v0.20 CRD requires it for a canary (not for the stable predictor): the overlay sets it.
    isvc = copy.deepcopy(one(canary_standard, "InferenceService"))
    del isvc["spec"]["canary"][0]["predictor"]["model"]["name"]
    assert any("'name' is a required property" in p for p in schema_validator.validate(isvc))


def test_kserve_crd_checks_metadata_and_nested_pod_fields(schema_validator, canary_standard):
    runtime = copy.deepcopy(one(canary_standard, "ServingRuntime"))
    runtime["metadata"]["labels"] = {"ok": 1}  # label values are strings
    runtime["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    problems = "\n".join(schema_validator.validate(runtime))
    assert "metadata.labels.ok" in problems and "readOnlyRootFs" in problems, problems


def test_core_schema_is_strict_kubernetes_1_33(schema_validator, helm):
    pod = copy.deepcopy(one(helm_template(helm), "Pod"))
    assert schema_validator.validate(pod) == []
    pod["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    pod["spec"]["restartPolicyy"] = "Never"
    problems = "\n".join(schema_validator.validate(pod))
    assert "restartPolicyy" in problems and "1.33" in problems, problems


def test_unknown_kinds_are_reported_not_passed(schema_validator):
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x"}}
    assert "no schema" in schema_validator.validate(unknown)[0]


@pytest.fixture(scope="module")
def streaming(helm):
    values = [
        *("-f", "charts/model-server/ci/stream-values.yaml"),
        *("-f", "charts/model-server/ci/kafka-eventing-values.yaml"),
    ]
    return helm_template(helm, *values)


def test_prometheus_operator_crd_rejects_an_unknown_endpoint_field(schema_validator, streaming):
    monitor = copy.deepcopy(next(o for o in streaming if o["kind"] == "PodMonitor"))
    assert schema_validator.validate(monitor) == []
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"
    problems = "\n".join(schema_validator.validate(monitor))
    assert "intervall" in problems and "15 seconds" in problems, problems


def test_keda_crd_has_the_bounds_its_release_build_adds(schema_validator, streaming):
    scaled = copy.deepcopy(one(streaming, "ScaledObject"))
    assert schema_validator.validate(scaled) == []
    scaled["spec"]["advanced"] = {
        "horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000}}}
    }
    scaled["spec"]["triggers"][0]["metdata"] = {}
    problems = "\n".join(schema_validator.validate(scaled))
    assert "4000 is greater than the maximum of 3600" in problems and "metdata" in problems, problems


def test_trigger_spec_is_checked_although_its_crd_preserves_unknown_fields(schema_validator, streaming):
    trigger = copy.deepcopy(next(o for o in streaming if o["kind"] == "Trigger"))
    assert schema_validator.validate(trigger) == []
    trigger["spec"]["subscribr"] = trigger["spec"].pop("subscriber")
    assert any("subscribr" in p for p in schema_validator.validate(trigger))


def test_eventing_kafka_crds_require_their_fields(schema_validator, streaming):
    source = copy.deepcopy(one(streaming, "KafkaSource"))
    sink = copy.deepcopy(next(o for o in streaming if o["kind"] == "KafkaSink"))
    assert schema_validator.validate(source) == schema_validator.validate(sink) == []
    del source["spec"]["bootstrapServers"]
    sink["spec"]["contentMode"] = 7
    assert any("'bootstrapServers' is a required property" in p for p in schema_validator.validate(source))
    assert any("contentMode" in p for p in schema_validator.validate(sink))


def _mutate(isvc, path, value):
    *parents, last = path
    node = isvc
    for key in parents:
        node = node[key]
    node[last] = value


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (["spec", "predictor", "canaryTrafficPercent"], 10, "silently ignored in Standard mode"),
        (
            ["metadata", "annotations", "serving.kserve.io/deploymentMode"],
            "Knative",
            "needs the Standard deployment mode",
        ),
        (["spec", "canary", 0, "predictor", "maxReplicas"], 3, "maxReplicas is rejected"),
        (["spec", "canary", 0, "predictor", "scaleMetric"], "cpu", "scaleMetric is rejected"),
        (["spec", "canary", 0, "predictor", "name"], "", "predictor.name must be set"),
        (["spec", "canary", 0, "predictor", "minReplicas"], 2, "minReplicas exceeds"),
        (["spec", "canary", 0, "trafficPercent"], 120, "outside 0..100"),
        (["spec", "predictor", "scaleMetric"], "concurrency", "only Knative's KPA"),
        (["spec", "predictor", "maxReplicas"], 1, "never scales"),
        (["spec", "predictor", "minReplicas"], 0, "KServe clamps it to 1"),
        (["metadata", "annotations", "serving.kserve.io/autoscalerClass"], "keda", "KEDA rejects it"),
        (["spec", "predictor", "model", "name"], "kserve-container", "not allowed in the stable predictor"),
    ],
)
def test_rules_catch_each_v0_20_mistake(canary_standard, path, value, expected):
    runtimes = {"model-server": one(canary_standard, "ServingRuntime")}
    isvc = copy.deepcopy(one(canary_standard, "InferenceService"))
    assert violations(isvc, runtimes) == []
    _mutate(isvc, path, value)
    assert any(expected in p for p in violations(isvc, runtimes)), violations(isvc, runtimes)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["args"].__setitem__(0, "--model_name=iris"), "literally"),
        (lambda c: c.__setitem__("name", "server"), "kserve-container"),
        (lambda c: c["ports"].append({"name": "grpc", "containerPort": 8081}), "must be named h2c"),
    ],
)
def test_rules_catch_runtime_mistakes(canary_standard, mutate, expected):
    runtime = copy.deepcopy(one(canary_standard, "ServingRuntime"))
    isvc = one(canary_standard, "InferenceService")
    mutate(runtime["spec"]["containers"][0])
    assert any(expected in p for p in violations(isvc, {"model-server": runtime}))


def test_rules_catch_two_ports_in_knative_mode(kubectl):
    objects = kustomize(kubectl, MANIFESTS / "overlays" / "grpc")
    isvc = copy.deepcopy(one(objects, "InferenceService"))
    isvc["metadata"]["annotations"] = {"serving.kserve.io/deploymentMode": "Knative"}
    problems = violations(isvc, {"model-server": one(objects, "ServingRuntime")})
    assert any("Knative allows one container port" in p for p in problems), problems
