"""Strict, offline schema validation of rendered objects.

- KServe kinds: the openAPIV3Schema of the official KServe v0.20 CRDs in KSERVE_CRDS_DIR
  (default ../shared/kserve-crds), made strict: every object schema without
  additionalProperties or x-kubernetes-preserve-unknown-fields rejects unknown fields, as the
  API server's strict field validation does. metadata is checked against Kubernetes' ObjectMeta.
- Other CRD kinds (Prometheus Operator, KEDA, Knative Eventing, eventing-kafka, ...): the
  official CRDs in CRDS_DIR (default ../shared/crds, see its README), made strict the same way,
  with what that README says a cluster adds: KEDA's stabilizationWindowSeconds bounds (the
  kustomize patch of its release build), and a Trigger's spec checked against the fields it
  declares (its CRD preserves unknown ones, for experimental features our Triggers do not use).
- Core kinds (Pod, ConfigMap, PodDisruptionBudget, NetworkPolicy, ...): kubernetes-validate's
  strict Kubernetes 1.33 schemas.
Anything else has no schema here: `validate` reports it, and callers say why they exempt it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import schema_contents
from referencing import Registry, Resource

from .rendering import REPO

KUBERNETES_VERSION = "1.33.0"
STRICT_SCHEMAS = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"


def kserve_crds_dir() -> Path:
    return Path(os.environ.get("KSERVE_CRDS_DIR") or REPO.parent / "shared" / "kserve-crds")


def third_party_crds_dir() -> Path:
    return Path(os.environ.get("CRDS_DIR") or REPO.parent / "shared" / "crds")


def _as_a_cluster_enforces(kind: str, schema: dict) -> dict:
    if kind == "ScaledObject":
        behavior = schema["properties"]["spec"]["properties"]["advanced"]["properties"]
        behavior = behavior["horizontalPodAutoscalerConfig"]["properties"]["behavior"]["properties"]
        for direction in ("scaleUp", "scaleDown"):
            window = behavior[direction]["properties"]["stabilizationWindowSeconds"]
            window.update(minimum=0, maximum=3600)
    if kind == "Trigger":
        schema["properties"]["spec"].pop("x-kubernetes-preserve-unknown-fields", None)
    return schema


def strict(schema: dict) -> dict:
    """A copy of a CRD schema in which objects reject fields they do not declare."""
    schema = copy.deepcopy(schema)

    def visit(node):
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        if (
            node.get("type") == "object"
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for child in node.get(key, {}).values():
                visit(child)
        for key in ("items", "additionalProperties", "not"):
            visit(node.get(key))
        for key in ("anyOf", "allOf", "oneOf"):
            visit(node.get(key, []))

    visit(schema)
    return schema


class SchemaValidator:
    def __init__(self, crds_dir: Path, *more_crds_dirs: Path):
        self.crds: dict[tuple[str, str], tuple[jsonschema.Validator, str]] = {}
        paths = sorted(crds_dir.glob("*.yaml")) + [p for d in more_crds_dirs for p in sorted(d.rglob("*.yaml"))]
        for path in paths:
            crd = yaml.safe_load(path.read_text())
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                schema = strict(_as_a_cluster_enforces(spec["names"]["kind"], schema))
                schema["properties"]["metadata"] = {"type": "object"}  # checked against ObjectMeta below
                for implied in ("apiVersion", "kind"):  # Knative's CRDs leave them out of the schema
                    schema["properties"].setdefault(implied, {"type": "string"})
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                self.crds[key] = (jsonschema.Draft202012Validator(schema), spec["scope"])
        object_meta = schema_contents(f"{STRICT_SCHEMAS}/objectmeta-meta-v1.json", KUBERNETES_VERSION)
        definitions = schema_contents(f"{STRICT_SCHEMAS}/_definitions.json", KUBERNETES_VERSION)
        registry = Resource.from_contents(definitions) @ (Resource.from_contents(object_meta) @ Registry())
        self.object_meta = jsonschema.Draft202012Validator(object_meta, registry=registry)

    def kserve_kinds(self) -> set[tuple[str, str]]:
        return set(self.crds)

    def validate(self, obj: dict) -> list[str]:
        """Every schema violation of one object, as readable strings (empty: valid)."""
        key = (obj.get("apiVersion", ""), obj.get("kind", ""))
        name = f"{key[1]}/{obj.get('metadata', {}).get('name')}"
        if key in self.crds:
            validator, scope = self.crds[key]
            problems = [_describe(e) for e in validator.iter_errors(obj)]
            problems += [f"metadata.{_describe(e)}" for e in self.object_meta.iter_errors(obj.get("metadata", {}))]
            if scope == "Cluster" and "namespace" in obj.get("metadata", {}):
                problems.append("metadata.namespace: set on a cluster-scoped kind")
            return [f"{name}: {p}" for p in problems]
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            return [f"{name}: {_describe(error)} (Kubernetes {KUBERNETES_VERSION})"]
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{name}: no schema for {key[0]} {key[1]} (neither KServe CRD nor Kubernetes {KUBERNETES_VERSION})"]
        return []


def _describe(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<root>"
    return f"{path}: {error.message[:300]}"
