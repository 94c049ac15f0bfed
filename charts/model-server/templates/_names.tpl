{{/* Names of the objects, the image references, the service account and the labels and annotations every template uses. */}}

{{- define "model-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "model-server.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The InferenceService name: KServe passes it to the server as the model name. */}}
{{- define "model-server.isvcName" -}}
{{- default .Release.Name .Values.model.name }}
{{- end }}

{{/* The runtime the InferenceService names; empty means KServe auto-selects. */}}
{{- define "model-server.runtimeName" -}}
{{- if .Values.model.runtime }}
{{- .Values.model.runtime }}
{{- else if include "model-server.ownRuntime" . }}
{{- include "model-server.fullname" . }}
{{- end }}
{{- end }}

{{/* "true" when this chart renders its own ServingRuntime. */}}
{{- define "model-server.ownRuntime" -}}
{{- if and .Values.servingRuntime.enabled (not .Values.model.runtime) (not .Values.customContainer.enabled) }}true{{ end }}
{{- end }}

{{/* repository:tag, or repository@sha256:... when the tag is a digest. Takes (list repository tag). */}}
{{- define "model-server.imageRef" -}}
{{- $repository := index . 0 -}}
{{- $tag := index . 1 -}}
{{- printf "%s%s%s" $repository (ternary "@" ":" (hasPrefix "sha256:" $tag)) $tag }}
{{- end }}

{{- define "model-server.image" -}}
{{- include "model-server.imageRef" (list .Values.image.repository (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}

{{/* Labels and annotations ------------------------------------------------ */}}

{{- define "model-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The labels and annotations of every object's metadata. Takes the chart
context, or (dict "root" $ "labels" (dict ...) "annotations" (dict ...)
"podCopied" bool) for an object with labels or annotations of its own.
Labels: the chart's own (helm.sh/chart, app.kubernetes.io/*), then the
object's (a component, the labels a monitor needs), then commonLabels; the
first one wins a key. podCopied: an object whose labels KServe copies onto its
pods (the InferenceService) gets no chart or app version, or every chart
upgrade would restart them. Annotations: the object's, then
commonAnnotations (a Helm hook stays a hook).
*/}}
{{- define "model-server.metadata" -}}
{{- $args := . -}}
{{- if not (hasKey . "root") -}}
{{- $args = dict "root" . -}}
{{- end -}}
{{- $root := $args.root -}}
labels:
  {{- include "model-server.labels" $args | nindent 2 }}
{{- with merge (deepCopy ($args.annotations | default dict)) ($root.Values.commonAnnotations | default dict) }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The labels alone, as model-server.metadata renders them (same arguments). */}}
{{- define "model-server.labels" -}}
{{- $args := . -}}
{{- if not (hasKey . "root") -}}
{{- $args = dict "root" . -}}
{{- end -}}
{{- $root := $args.root -}}
{{- $labels := include "model-server.selectorLabels" $root | fromYaml -}}
{{- $_ := set $labels "app.kubernetes.io/managed-by" $root.Release.Service -}}
{{- if not $args.podCopied -}}
{{- $_ := set $labels "helm.sh/chart" (printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_") -}}
{{- $_ := set $labels "app.kubernetes.io/version" $root.Chart.AppVersion -}}
{{- end -}}
{{- toYaml (merge $labels ($args.labels | default dict) ($root.Values.commonLabels | default dict)) }}
{{- end }}

{{/*
The ServiceAccount the pods run as: serviceAccount.name, or the release
fullname for the one this chart creates; empty (no serviceAccountName: the
namespace's default) when it creates none and no name is given.
*/}}
{{- define "model-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "model-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The pod fields of the service account, on every pod that runs the server image (not the test pod). */}}
{{- define "model-server.podServiceAccount" -}}
automountServiceAccountToken: {{ .Values.serviceAccount.automount }}
{{- with include "model-server.serviceAccountName" . }}
serviceAccountName: {{ . }}
{{- end }}
{{- end }}

{{/* Labels KServe puts on every predictor pod (stable and canary) of this InferenceService. */}}
{{- define "model-server.predictorPodLabels" -}}
serving.kserve.io/inferenceservice: {{ include "model-server.isvcName" . }}
component: predictor
{{- end }}
