{{/* Rules values.schema.json cannot express (they compare two values). */}}
{{- define "model-server.validate" -}}
{{- $a := .Values.autoscaling -}}
{{- $s := .Values.server -}}
{{- $mm := .Values.multiModel -}}
{{- if and $mm.enabled (or .Values.canary.enabled .Values.customContainer.enabled (not (include "model-server.ownRuntime" .))) }}
{{- fail "multiModel.enabled needs this chart's ServingRuntime, and no canary or custom container: TrainedModels are loaded by KServe's agent into a multi-model runtime" }}
{{- end }}
{{- if and $mm.enabled $s.managementTokenSecret }}
{{- fail "multiModel.enabled with server.managementTokenSecret: KServe's agent loads models through the repository API and sends no token" }}
{{- end }}
{{- if and (eq .Values.deploymentMode "Standard") (le (float64 .Values.terminationGracePeriodSeconds) (addf $s.drainSeconds $s.graceSeconds)) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed server.drainSeconds + server.graceSeconds (%v): Kubernetes would kill the pod before it drained" .Values.terminationGracePeriodSeconds (addf $s.drainSeconds $s.graceSeconds)) }}
{{- end }}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) }}
{{- fail (printf "autoscaling.maxReplicas (%d) must be >= autoscaling.minReplicas (%d)" (int $a.maxReplicas) (int $a.minReplicas)) }}
{{- end }}
{{- if and .Values.canary.enabled .Values.customContainer.enabled (eq .Values.deploymentMode "Standard") }}
{{- fail "a Standard-mode canary needs a model predictor: set customContainer.enabled=false (or use Knative mode)" }}
{{- end }}
{{- if and .Values.canary.enabled (eq .Values.deploymentMode "Standard") (gt (int .Values.canary.replicas) (max 1 (int $a.minReplicas))) }}
{{- fail (printf "canary.replicas (%d) must not exceed the stable predictor's minReplicas (%d): KServe rejects it" (int .Values.canary.replicas) (max 1 (int $a.minReplicas))) }}
{{- end }}
{{- end }}
{{- define "model-server.validateStream" -}}
{{- $s := .Values.stream -}}
{{- if and $s.enabled $s.keda.enabled (gt (int $s.keda.minReplicas) (int $s.partitions)) }}
{{- fail (printf "stream.keda.minReplicas (%d) must not exceed stream.partitions (%d): a replica without a partition sits idle" (int $s.keda.minReplicas) (int $s.partitions)) }}
{{- end }}
{{- if and $s.enabled (not $s.keda.enabled) (gt (int $s.replicas) (int $s.partitions)) }}
{{- fail (printf "stream.replicas (%d) must not exceed stream.partitions (%d): a replica without a partition sits idle" (int $s.replicas) (int $s.partitions)) }}
{{- end }}
{{- if and .Values.eventing.enabled (eq .Values.model.protocolVersion "grpc-v2") }}
{{- fail "eventing delivers CloudEvents over HTTP: model.protocolVersion grpc-v2 serves no HTTP predict route in Knative mode; use v1 or v2" }}
{{- end }}
{{- end }}
