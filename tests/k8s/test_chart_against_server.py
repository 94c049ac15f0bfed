"""What the chart tells a cluster to do, done against the real server on loopback.

No Kubernetes cluster runs here, so the chart's calls are replayed locally: the `helm test`
client script, the request NOTES.txt prints, and every metric the Grafana dashboard and the KEDA
query read, against `python -m model_server` (tests/conftest.py's served_model).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .rendering import CHART, helm_template, one, run

SMOKE_REQUEST = CHART / "files" / "smoke_request.py"


def smoke_request(served, protocol, name=None, attempts="1"):
    env = {
        **os.environ,
        "BASE_URL": served.http_url,
        "MODEL_NAME": name or served.model_name,
        "PROTOCOL": protocol,
        "INSTANCES": "[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]",
        "ATTEMPTS": attempts,
    }
    return subprocess.run([sys.executable, str(SMOKE_REQUEST)], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_helm_test_client_passes_against_the_real_server(served_model, protocol):
    result = smoke_request(served_model, protocol)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK ")


def test_helm_test_client_fails_when_the_model_is_not_there(served_model):
    result = smoke_request(served_model, "v2", name="no-such-model")
    assert result.returncode == 1 and "no-such-model" in result.stdout


def test_notes_request_is_accepted_by_the_real_server(helm, served_model):
    notes = run([helm, "install", served_model.model_name, str(CHART), "--dry-run=client"]).stdout
    payload = re.search(r"-d '(\{.*\})'", notes).group(1)
    response = httpx.post(
        f"{served_model.http_url}/v2/models/{served_model.model_name}/infer",
        content=payload,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"][0] == 1


@pytest.fixture(scope="module")
def exported(served_model):
    """Metric samples after one good and one bad request: name -> list of label dicts."""
    url = f"{served_model.http_url}/v2/models/{served_model.model_name}/infer"
    good = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}
    assert httpx.post(url, json=good, timeout=30).status_code == 200
    assert httpx.post(url, json={"inputs": "not a list"}, timeout=30).status_code == 400
    text = httpx.get(f"{served_model.http_url}/metrics", timeout=30).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.labels)
    return samples


def queries(helm) -> list[str]:
    objects = helm_template(helm, "--set", "autoscaling.class=keda", "--set", "model.name=iris")
    dashboard = json.loads(one(objects, "ConfigMap")["data"]["model-server.json"])
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    keda = one(objects, "InferenceService")["spec"]["predictor"]["autoScaling"]["metrics"][0]
    return exprs + variables + [keda["external"]["metric"]["query"]]


# Exported only by a server with a profile.json (drift) or --log_payloads: tests/server/test_drift.py
# and tests/server/test_payload_log.py scrape them from such servers.
CONDITIONAL = {
    "model_server_feature_drift",
    "model_server_prediction_drift",
    "model_server_feature_missing_ratio",
    "model_server_payload_log_events_total",
}


def test_every_metric_the_dashboard_and_keda_read_is_exported(helm, exported):
    used = {m for q in queries(helm) for m in re.findall(r"\b(?:model_server|request)_[a-z_]+\b", q)}
    assert {"model_server_requests_total", "model_server_batch_size_bucket", "request_predict_seconds_bucket"} <= used
    assert sorted(used - set(exported) - CONDITIONAL) == []


def test_metric_labels_the_queries_filter_on(helm, exported, served_model):
    codes = {labels["code"] for labels in exported["model_server_requests_total"]}
    assert {"200", "400"} <= codes
    # The dashboard's error panels count code!~"<success>": 200 must match it, 400 must not.
    (success,) = {m for q in queries(helm) for m in re.findall(r'code!~"([^"]+)"', q)}
    assert re.fullmatch(success, "200") and {c for c in codes if not re.fullmatch(success, c)} >= {"400"}
    assert {labels["protocol"] for labels in exported["model_server_requests_total"]} >= {"v2"}
    assert {labels["model_name"] for labels in exported["request_predict_seconds_bucket"]} == {served_model.model_name}


def test_dashboard_shows_rates_and_errors_per_model_version(helm, exported):
    per_version = [q for q in queries(helm) if "by (model, version)" in q]
    assert len(per_version) >= 2 and any('code!~"2.."' in q for q in per_version)
    assert any(labels["model"] and labels["version"] for labels in exported["model_server_requests_total"])


def test_helm_test_client_over_mutual_tls_with_an_api_key(demo_model_dir, tmp_path):
    """The chart's tls + auth setup replayed: the pod's own certificate as the client's, the
    Secret's ca.crt to verify the server, the credential from its file."""
    import ssl

    from model_server.core.auth import hash_api_key
    from tests.support.certificates import Authority
    from tests.support.servers import start_server

    ca = Authority(tmp_path / "ca")
    pod = ca.issue("pod")  # serverAuth; the chart's recipe issues it for client auth too
    client = ca.issue("client", client=True)
    keys = tmp_path / "api-keys"
    keys.write_text(f"{hash_api_key('smoke-key')} helm-test\n")
    token = tmp_path / "token"
    token.write_text("smoke-key\n")
    args = [f"--tls_cert={pod.cert}", f"--tls_key={pod.key}", f"--tls_client_ca={ca.path}"]
    args += ["--auth=api_key", f"--auth_api_keys_file={keys}"]
    verify = ssl.create_default_context(cafile=str(ca.path))
    verify.load_cert_chain(*client.pair())
    with start_server(demo_model_dir, "iris", *args, tls_verify=verify) as served:
        env = {"CA_FILE": str(ca.path), "CLIENT_CERT": str(client.cert), "CLIENT_KEY": str(client.key)}
        base = {**os.environ, "BASE_URL": served.http_url.replace("127.0.0.1", "localhost"), "MODEL_NAME": "iris"}
        common = {**base, "PROTOCOL": "v2", "INSTANCES": "[[5.1, 3.5, 1.4, 0.2]]", "ATTEMPTS": "1", **env}
        run_it = [sys.executable, str(SMOKE_REQUEST)]
        ok = subprocess.run(
            run_it, env={**common, "TOKEN_FILE": str(token)}, capture_output=True, text=True, timeout=60
        )
        assert ok.returncode == 0 and ok.stdout.startswith("OK "), ok.stdout + ok.stderr
        refused = subprocess.run(run_it, env=common, capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and "HTTP 401" in refused.stdout
