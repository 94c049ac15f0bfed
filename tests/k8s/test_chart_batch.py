"""The chart's batch scoring: an Indexed Job (or a CronJob of it), strictly valid, hardened like the
predictor, sharded by JOB_COMPLETION_INDEX, and named so that `helm upgrade` never edits a Job."""

from __future__ import annotations

import pytest
import yaml

from .rendering import CHART, helm_template, helm_template_error, one

JOB_VALUES = CHART / "ci" / "batch-job-values.yaml"
CRON_VALUES = CHART / "ci" / "batch-cronjob-values.yaml"


def job_spec(objects) -> dict:
    kinds = {o["kind"] for o in objects}
    if "CronJob" in kinds:
        return one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]
    return one(objects, "Job")["spec"]


def container(spec: dict) -> dict:
    (scorer,) = spec["template"]["spec"]["containers"]
    return scorer


@pytest.mark.parametrize("values", [JOB_VALUES, CRON_VALUES], ids=["job", "cronjob"])
def test_batch_renders_a_strictly_valid_indexed_job(helm, schema_validator, values):
    objects = helm_template(helm, "-f", str(values))
    batch = [o for o in objects if o["kind"] in ("Job", "CronJob")]
    assert len(batch) == 1
    assert schema_validator.validate(batch[0]) == []
    spec = job_spec(objects)
    settings = yaml.safe_load(values.read_text())["batch"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == settings["shards"]
    assert spec["parallelism"] == settings.get("parallelism", settings["shards"])
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    scorer = container(spec)
    assert scorer["command"] == ["/opt/venv/bin/python", "-m", "model_server.batch"]
    assert {"name": "MODEL_SERVER_SHARD_COUNT", "value": str(settings["shards"])} in scorer["env"]
    assert f"--input={settings['input']}" in scorer["args"]
    assert f"--outputs={','.join(settings['outputs'])}" in scorer["args"]


def test_the_batch_pods_are_hardened_like_the_predictor(helm):
    objects = helm_template(helm, "-f", str(JOB_VALUES))
    predictor = one(objects, "InferenceService")["spec"]["predictor"]
    pod = job_spec(objects)["template"]["spec"]
    assert pod["securityContext"] == predictor["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    runtime = one(objects, "ServingRuntime")["spec"]["containers"][0]
    for c in [*pod["initContainers"], *pod["containers"]]:
        assert c["securityContext"] == predictor["model"]["securityContext"]
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert container(job_spec(objects))["image"] == runtime["image"]


def test_the_model_comes_from_the_same_storage_uri_or_the_image(helm):
    spec = job_spec(helm_template(helm, "-f", str(JOB_VALUES)))
    (init,) = spec["template"]["spec"]["initContainers"]
    assert init["image"].startswith("kserve/storage-initializer:")
    assert init["args"] == ["s3://models/iris/v1", "/mnt/models"]
    assert {"name": "model", "mountPath": "/mnt/models", "readOnly": True} in container(spec)["volumeMounts"]
    assert "--model_dir=/mnt/models" in container(spec)["args"]
    cron = job_spec(helm_template(helm, "-f", str(CRON_VALUES)))
    assert "initContainers" not in cron["template"]["spec"]  # the image's own /mnt/models


def test_each_scheduled_run_writes_to_its_own_directory(helm):
    objects = helm_template(helm, "-f", str(CRON_VALUES))
    cron = one(objects, "CronJob")["spec"]
    assert cron["schedule"] == "0 2 * * *" and cron["concurrencyPolicy"] == "Forbid"
    scorer = container(cron["jobTemplate"]["spec"])
    assert "--output=gs://scores/nightly/$(JOB_NAME)" in scorer["args"]
    (job_name,) = [e for e in scorer["env"] if e["name"] == "JOB_NAME"]
    assert job_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"


def test_refused_rows_fail_the_index_without_retries(helm):
    rules = job_spec(helm_template(helm, "-f", str(JOB_VALUES)))["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailIndex",
        "onExitCodes": {"containerName": "batch", "operator": "In", "values": [2]},
    }


def test_the_job_name_follows_its_spec_so_upgrades_never_edit_a_job(helm):
    def name(*extra):
        return one(helm_template(helm, "-f", str(JOB_VALUES), *extra), "Job")["metadata"]["name"]

    first = name()
    assert first == name() and first.startswith("demo-model-server-batch-") and len(first) <= 52
    assert name("--set", "batch.input=s3://scores/other/") != first
    assert name("--set", "image.tag=0.2.0") != first
    assert name("--set", "autoscaling.maxReplicas=5") == first  # a predictor change leaves the Job alone
    assert name("--set-string", "batch.runId=20260102") == "demo-model-server-batch-20260102"


def test_batch_is_off_by_default_and_needs_its_paths(helm):
    assert not [o for o in helm_template(helm) if o["kind"] in ("Job", "CronJob")]
    error = helm_template_error(helm, "--set", "batch.enabled=true")
    assert "batch.enabled needs batch.input and batch.output" in error
    assert "'/batch/outputs/0'" in helm_template_error(
        helm, "--set", "batch.enabled=true", "--set", "batch.outputs={probs}"
    )
    assert "'/batch/schedule'" in helm_template_error(helm, "--set", "batch.schedule=tomorrow")
