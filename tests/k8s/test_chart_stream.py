"""The chart's streaming objects: the consumer Deployment and its ScaledObject, the Knative Eventing pipeline."""

from __future__ import annotations

import pytest
import yaml

from model_server.core.codec import cloudevent
from model_server.kserve.workers import auto_workers
from model_server.stream.settings import StreamSettings

from .rendering import CHART, helm_template, helm_template_error, kinds, one

STREAM = ["-f", str(CHART / "ci" / "stream-values.yaml")]
EVENTING = ["-f", str(CHART / "ci" / "kafka-eventing-values.yaml")]
MINIMAL_STREAM = [
    "--set",
    "stream.enabled=true",
    "--set",
    "stream.bootstrapServers=kafka:9092",
    "--set",
    "stream.inputTopic=in",
    "--set",
    "stream.outputTopic=out",
]


def deployment(objects):
    return one(objects, "Deployment")


def container(objects):
    (found,) = deployment(objects)["spec"]["template"]["spec"]["containers"]
    return found


def by_name(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_nothing_streams_by_default(helm):
    assert not {"Deployment", "ScaledObject", "KafkaSource", "Trigger"} & set(kinds(helm_template(helm)))


def test_consumer_runs_the_same_image_with_flags_the_consumer_accepts(helm):
    objects = helm_template(helm, *STREAM, release="iris", namespace="models")
    consumer = container(objects)
    predictor_image = one(objects, "ServingRuntime")["spec"]["containers"][0]["image"]
    assert consumer["image"] == predictor_image
    assert consumer["command"] == ["/opt/venv/bin/python", "-m", "model_server.stream"]
    # The rendered flags and variables parse with the consumer's own settings (its interface contract).
    environ = {e["name"]: "from-secret" for e in consumer["env"]}
    settings = StreamSettings.from_args(consumer["args"], environ=environ)
    assert (settings.input_topic, settings.output_topic, settings.error_topic) == (
        "iris-requests",
        "iris-responses",
        "iris-errors",
    )
    assert settings.group_id == "iris-model-server-stream" and settings.model_name == "iris"
    assert (settings.security_protocol, settings.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert settings.tls_ca == "/etc/kafka-tls/ca.crt" and settings.commit_interval_ms == 50
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in consumer["env"]}
    assert secrets["MODEL_SERVER_SASL_PASSWORD"] == {"name": "iris-kafka-user", "key": "password"}


@pytest.mark.parametrize("workers,expected", [(None, 1), ("2", 2), ("auto", None)])
def test_consumer_workers_value_is_its_workers_flag(helm, workers, expected):
    extra = [] if workers is None else ["--set", f"stream.workers={workers}"]
    args = container(helm_template(helm, *MINIMAL_STREAM, *extra))["args"]
    assert f"--workers={workers or 1}" in args
    settings = StreamSettings.from_args(args, environ={})
    assert settings.workers == (expected or auto_workers())


def test_consumer_is_hardened_and_probed_on_its_ops_port(helm):
    objects = helm_template(helm, *STREAM)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pod = deployment(objects)["spec"]["template"]["spec"]
    consumer = container(objects)
    assert consumer["securityContext"] == values["securityContext"]
    assert pod["securityContext"] == values["podSecurityContext"] and pod["automountServiceAccountToken"] is False
    assert consumer["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert consumer["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert consumer["resources"] == values["resources"]
    mounts = {m["name"]: m for m in consumer["volumeMounts"]}
    assert mounts["model"] == {"name": "model", "mountPath": "/mnt/models", "readOnly": True}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "iris-model"}
    assert volumes["kafka-tls"]["secret"] == {"secretName": "kafka-cluster-ca"}
    assert pod["terminationGracePeriodSeconds"] == 60


def test_keda_scales_on_group_lag_and_never_past_the_partitions(helm):
    objects = helm_template(helm, *STREAM, release="iris")
    scaled = one(objects, "ScaledObject")["spec"]
    assert "replicas" not in deployment(objects)["spec"]  # KEDA owns it
    assert scaled["scaleTargetRef"] == {"name": deployment(objects)["metadata"]["name"]}
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 6)
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka" and trigger["authenticationRef"] == {"name": "iris-kafka-auth"}
    metadata = trigger["metadata"]
    assert metadata["consumerGroup"] == "iris-model-server-stream" and metadata["topic"] == "iris-requests"
    assert (metadata["lagThreshold"], metadata["allowIdleConsumers"]) == ("500", "false")
    assert metadata["bootstrapServers"] == "kafka-bootstrap.kafka.svc:9093"


def test_without_keda_fixed_replicas(helm):
    objects = helm_template(helm, *MINIMAL_STREAM, "--set", "stream.keda.enabled=false", "--set", "stream.replicas=2")
    assert "ScaledObject" not in kinds(objects) and deployment(objects)["spec"]["replicas"] == 2


def test_stream_pod_monitor_scrapes_the_ops_port(helm):
    monitors = by_name(helm_template(helm, *STREAM, release="iris"), "PodMonitor")
    monitor = monitors["iris-model-server-stream"]["spec"]
    assert monitor["podMetricsEndpoints"][0]["port"] == "http"
    assert monitor["selector"]["matchLabels"]["app.kubernetes.io/component"] == "stream"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["--set", "stream.enabled=true"], "'/stream/bootstrapServers': minLength"),
        ([*MINIMAL_STREAM, "--set", "stream.keda.minReplicas=5"], "must not exceed stream.partitions (4)"),
        ([*MINIMAL_STREAM, "--set", "stream.keda.enabled=false", "--set", "stream.replicas=9"], "stream.replicas (9)"),
        ([*MINIMAL_STREAM, "--set", "stream.securityProtocol=SASL_SSL"], "'/stream/sasl/secretName'"),
        ([*MINIMAL_STREAM, "--set", "stream.inputTopic=a b"], "'/stream/inputTopic'"),
        (["--set", "eventing.enabled=true"], "'/eventing/bootstrapServers': minItems"),
        (["--set", "eventing.protocol=grpc"], "'/eventing/protocol'"),
    ],
)
def test_refused_stream_and_eventing_values(helm, values, message):
    assert message in helm_template_error(helm, *values)


def test_eventing_pipeline_keeps_the_reply_and_routes_it_by_type(helm):
    objects = helm_template(helm, *EVENTING, release="iris", namespace="models")
    broker = one(objects, "Broker")
    source = one(objects, "KafkaSource")
    assert source["spec"]["sink"]["ref"] == {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "name": broker["metadata"]["name"],
    }
    assert source["spec"]["topics"] == ["iris-requests"] and source["spec"]["ordering"] == "ordered"
    triggers = by_name(objects, "Trigger")
    requests, replies = triggers["iris-model-server-eventing-requests"], triggers["iris-model-server-eventing-replies"]
    # Requests: only the source's events (never the replies, or they would loop) to V2 infer.
    assert requests["spec"]["filter"]["attributes"] == {
        "type": "dev.knative.kafka.event",
        "source": "/apis/v1/namespaces/models/kafkasources/iris-model-server-eventing#iris-requests",
    }
    subscriber = requests["spec"]["subscriber"]
    assert subscriber["ref"] == {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService", "name": "iris"}
    assert subscriber["uri"] == "/v2/models/iris/infer"
    sinks = by_name(objects, "KafkaSink")
    assert requests["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] in sinks
    assert sinks[requests["spec"]["delivery"]["deadLetterSink"]["ref"]["name"]]["spec"]["topic"] == "iris-errors"
    # Replies: what the server sends back (type, source) to the output topic.
    reply = cloudevent.reply(cloudevent.CloudEvent({"id": "partition:0/offset:7"}, b"{}", False), "iris", b"{}")
    assert replies["spec"]["filter"]["attributes"] == {
        "type": reply.attributes["type"],
        "source": reply.attributes["source"],
    }
    assert reply.attributes["subject"] == "partition:0/offset:7"
    assert sinks[replies["spec"]["subscriber"]["ref"]["name"]]["spec"]["topic"] == "iris-responses"
    for trigger in triggers.values():
        assert trigger["spec"]["broker"] == broker["metadata"]["name"]


def test_eventing_v1_and_an_existing_broker(helm):
    objects = helm_template(
        helm,
        *EVENTING,
        "--set",
        "eventing.protocol=v1",
        "--set",
        "eventing.broker.create=false",
        "--set",
        "eventing.broker.name=default",
        release="iris",
    )
    assert "Broker" not in kinds(objects)
    requests = by_name(objects, "Trigger")["iris-model-server-eventing-requests"]
    assert (
        requests["spec"]["subscriber"]["uri"] == "/v1/models/iris:predict" and requests["spec"]["broker"] == "default"
    )
