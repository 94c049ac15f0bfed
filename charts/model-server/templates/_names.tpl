{{/* Names of the objects, the image references and the labels every template uses. */}}

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

{{/* Labels ---------------------------------------------------------------- */}}

{{- define "model-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "model-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "model-server.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "model-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels KServe puts on every predictor pod (stable and canary) of this InferenceService. */}}
{{- define "model-server.predictorPodLabels" -}}
serving.kserve.io/inferenceservice: {{ include "model-server.isvcName" . }}
component: predictor
{{- end }}
