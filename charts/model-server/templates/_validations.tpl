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
