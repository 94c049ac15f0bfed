"""KServe v0.20 rules that the CRD schemas cannot express.

KServe enforces most of these in its admission webhook (inference_service_validation.go), which
needs a cluster; the rest are silent misbehaviour (a field KServe ignores, an autoscaler that
never scales). `violations` re-states them as checks on rendered objects.
"""

from __future__ import annotations

DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
AUTOSCALER_CLASS = "serving.kserve.io/autoscalerClass"
CANARY_FORBIDDEN = ("maxReplicas", "scaleTarget", "scaleMetric", "autoScaling")
IMPLEMENTATIONS = (
    "model",
    "containers",
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
)
MODEL_NAME_TEMPLATE = "--model_name={{.Name}}"
BUILTIN_SKLEARN_PRIORITY = 3  # kserve-predictiveserver; kserve-mlserver has 2


def violations(isvc: dict, runtimes: dict[str, dict]) -> list[str]:
    """What is wrong with an InferenceService (given the runtimes rendered next to it, by name)."""
    annotations = isvc["metadata"].get("annotations", {})
    mode = annotations.get(DEPLOYMENT_MODE)
    predictor = isvc["spec"]["predictor"]
    problems = []
    if mode not in ("Standard", "Knative"):
        problems.append(f"{DEPLOYMENT_MODE} must be Standard or Knative, got {mode!r}")
    problems += _scaling_violations(mode, annotations.get(AUTOSCALER_CLASS), predictor)
    problems += _predictor_violations(mode, predictor, runtimes)
    if "name" in (predictor.get("model") or {}):
        problems.append("predictor.model.name: not allowed in the stable predictor")
    if mode == "Standard" and "canaryTrafficPercent" in predictor:
        problems.append("predictor.canaryTrafficPercent: silently ignored in Standard mode (use spec.canary)")
    problems += _canary_violations(mode, isvc["spec"], runtimes)
    return problems


def runtime_violations(runtime: dict, mode: str | None = None) -> list[str]:
    """What is wrong with one of our (Cluster)ServingRuntimes, used in `mode` if given."""
    spec = runtime["spec"]
    problems = _container_violations(spec["containers"], mode, "runtime")
    args = spec["containers"][0].get("args", [])
    if MODEL_NAME_TEMPLATE not in args:
        problems.append(f"runtime args must keep KServe's template {MODEL_NAME_TEMPLATE!r} literally, got {args}")
    for fmt in spec.get("supportedModelFormats", []):
        if fmt["name"] == "sklearn" and fmt.get("autoSelect") and fmt.get("priority", 0) <= BUILTIN_SKLEARN_PRIORITY:
            problems.append(f"sklearn priority {fmt.get('priority')} does not outrank KServe's built-in runtimes")
    return problems


def _scaling_violations(mode, autoscaler_class, predictor) -> list[str]:
    metric, problems = predictor.get("scaleMetric"), []
    min_replicas = predictor.get("minReplicas", 1)
    if mode == "Knative":
        if autoscaler_class:
            problems.append(f"{AUTOSCALER_CLASS} applies to Standard mode only")
        if metric not in (None, "concurrency", "rps"):
            problems.append(f"scaleMetric {metric}: Knative's KPA scales on concurrency or rps")
        if "deploymentStrategy" in predictor:
            problems.append("deploymentStrategy: Standard mode only")
        return problems
    autoscaler_class = autoscaler_class or "hpa"
    if autoscaler_class not in ("hpa", "keda", "none", "external"):
        problems.append(f"{AUTOSCALER_CLASS} {autoscaler_class!r} is not hpa, keda, none or external")
    if metric in ("concurrency", "rps"):
        problems.append(f"scaleMetric {metric}: only Knative's KPA scales on it")
    if autoscaler_class == "keda":
        if metric is not None:
            problems.append("scaleMetric: KEDA rejects it (metrics go in autoScaling.metrics)")
        for m in (predictor.get("autoScaling") or {}).get("metrics", []):
            if m.get("type") == "External":
                external = m.get("external", {})
                if not external.get("metric", {}).get("query") or "value" not in external.get("target", {}):
                    problems.append("KEDA External metric needs metric.query and target.value")
    if autoscaler_class == "hpa":
        if metric not in (None, "cpu", "memory"):
            problems.append(f"scaleMetric {metric}: the HPA scales on cpu or memory")
        if min_replicas < 1:
            problems.append("minReplicas 0 with the HPA: KServe clamps it to 1")
        for m in (predictor.get("autoScaling") or {}).get("metrics", []):
            if m.get("type") != "Resource":
                problems.append(f"autoScaling metric type {m.get('type')}: the HPA takes Resource metrics only")
    if autoscaler_class in ("hpa", "keda") and predictor.get("maxReplicas", 0) <= min_replicas:
        problems.append(
            f"maxReplicas {predictor.get('maxReplicas')} <= minReplicas {min_replicas}: KServe defaults it to"
            " minReplicas, so the autoscaler never scales"
        )
    if autoscaler_class != "keda" and min_replicas == 0:
        problems.append("minReplicas 0: only KEDA (Standard) or the KPA (Knative) scale to zero")
    return problems


def _predictor_violations(mode, predictor, runtimes, where="predictor") -> list[str]:
    present = [key for key in IMPLEMENTATIONS if predictor.get(key)]
    if len(present) != 1:
        return [f"{where}: exactly one implementation expected, got {present}"]
    problems = []
    if "containers" in predictor:
        problems += _container_violations(predictor["containers"], mode, where)
    model = predictor.get("model")
    if model and model.get("runtime") in runtimes:
        runtime = runtimes[model["runtime"]]
        formats = [f["name"] for f in runtime["spec"].get("supportedModelFormats", [])]
        if model["modelFormat"]["name"] not in formats:
            problems.append(f"{where}: runtime {model['runtime']} serves {formats}, not {model['modelFormat']['name']}")
        protocol = model.get("protocolVersion")
        if protocol and protocol not in runtime["spec"].get("protocolVersions", []):
            problems.append(f"{where}: runtime {model['runtime']} does not speak {protocol}")
        problems += [f"{where}: {p}" for p in runtime_violations(runtime, mode)]
    return problems


def _container_violations(containers, mode, where) -> list[str]:
    problems = []
    if containers[0].get("name") != "kserve-container":
        problems.append(f"{where}: the serving container must be named kserve-container")
    for container in containers:
        ports = container.get("ports", [])
        if mode == "Knative" and len(ports) > 1:
            problems.append(f"{where}: Knative allows one container port, got {len(ports)}")
        for port in ports:
            if port["containerPort"] == 8081 and port.get("name") != "h2c":
                problems.append(f"{where}: the gRPC port 8081 must be named h2c, got {port.get('name')!r}")
    return problems


def _canary_violations(mode, spec, runtimes) -> list[str]:
    canaries = spec.get("canary") or []
    if not canaries:
        return []
    problems = [] if mode == "Standard" else ["spec.canary: needs the Standard deployment mode"]
    stable = spec["predictor"]
    if not stable.get("model"):
        problems.append("spec.canary: the stable predictor must have a model")
    names = set()
    for i, canary in enumerate(canaries):
        predictor, where = canary["predictor"], f"canary[{i}]"
        name = predictor.get("name")
        if not name or name in names or name == stable.get("name"):
            problems.append(f"{where}: predictor.name must be set, unique and differ from the stable one: {name!r}")
        names.add(name)
        if not 0 <= canary["trafficPercent"] <= 100:
            problems.append(f"{where}: trafficPercent {canary['trafficPercent']} outside 0..100")
        problems += [
            f"{where}: {field} is rejected (fixed replicas)" for field in CANARY_FORBIDDEN if field in predictor
        ]
        if predictor.get("minReplicas", 0) > stable.get("minReplicas", 1):
            problems.append(f"{where}: minReplicas exceeds the stable predictor's")
        problems += _predictor_violations(mode, predictor, runtimes, where)
    if sum(c["trafficPercent"] for c in canaries) > 100:
        problems.append("spec.canary: trafficPercent values add up to more than 100")
    return problems
