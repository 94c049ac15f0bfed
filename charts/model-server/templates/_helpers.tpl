{{/* Names ---------------------------------------------------------------- */}}

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

{{/* Labels --------------------------------------------------------------- */}}

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

{{/* Predictor parts ------------------------------------------------------ */}}

{{/* Pod-level fields shared by the stable and the canary predictor. */}}
{{- define "model-server.predictorPod" -}}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- end }}

{{/*
The predictor's implementation: `model:` (our runtime or any other) or, with
customContainer.enabled, `containers:` running the server image directly.
Called with a dict: root (the chart context) and storageUri, image, args: this
version's settings (the canary passes its own, the stable predictor model.*);
containerName: only for a Standard canary, whose model the v0.20 CRD requires
to name its container (the stable predictor's model must not).
*/}}
{{- define "model-server.implementation" -}}
{{- $v := .root.Values -}}
{{- if $v.customContainer.enabled }}
containers:
  - name: kserve-container
    image: {{ default (include "model-server.image" .root) .image | quote }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      # KServe fills {{ "{{.Name}}" }} only in runtime containers: the name is literal here.
      - {{ printf "--model_name=%s" (include "model-server.isvcName" .root) | quote }}
      {{- include "model-server.serverArgs" .root | nindent 6 }}
      {{- range .args }}
      - {{ . | quote }}
      {{- end }}
    {{- if or .storageUri $v.model.env }}
    env:
      {{- with .storageUri }}
      # Makes KServe's storage initializer download the model into /mnt/models.
      - name: STORAGE_URI
        value: {{ . | quote }}
      {{- end }}
      {{- with $v.model.env }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- end }}
    {{- include "model-server.serverPortsAndProbes" .root | trim | nindent 4 }}
    {{- include "model-server.containerHardening" .root | trim | nindent 4 }}
{{- else }}
model:
  {{- with .containerName }}
  name: {{ . }}
  {{- end }}
  modelFormat:
    name: {{ $v.model.format }}
    {{- with $v.model.formatVersion }}
    version: {{ . | quote }}
    {{- end }}
  {{- with include "model-server.runtimeName" .root }}
  runtime: {{ . }}
  {{- end }}
  {{- with .storageUri }}
  storageUri: {{ . | quote }}
  {{- end }}
  {{- with $v.model.protocolVersion }}
  protocolVersion: {{ . }}
  {{- end }}
  {{- with .image }}
  image: {{ . | quote }}
  {{- end }}
  {{- with .args }}
  # Appended to the runtime's args by KServe.
  args:
    {{- range . }}
    - {{ . | quote }}
    {{- end }}
  {{- end }}
  {{- with $v.model.env }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "model-server.containerHardening" .root | trim | nindent 2 }}
{{- end }}
{{- end }}

{{/* The server's flags after --model_name (shared by our runtime and the custom container). */}}
{{- define "model-server.serverArgs" -}}
- --model_dir=/mnt/models
- --http_port=8080
- --grpc_port=8081
{{- end }}

{{/*
Ports and probes of the server container. Standard mode exposes REST (http1)
and gRPC (h2c, the name KServe needs for gRPC); Knative allows one port, so
there gRPC (model.protocolVersion grpc-v2) replaces REST and the HTTP probes.
*/}}
{{- define "model-server.serverPortsAndProbes" -}}
{{- $grpcOnly := and (eq .Values.deploymentMode "Knative") (eq .Values.model.protocolVersion "grpc-v2") -}}
ports:
  {{- if not $grpcOnly }}
  - name: http1
    containerPort: 8080
    protocol: TCP
  {{- end }}
  {{- if or $grpcOnly (eq .Values.deploymentMode "Standard") }}
  - name: h2c
    containerPort: 8081
    protocol: TCP
  {{- end }}
{{- if not $grpcOnly }}
readinessProbe:
  httpGet:
    path: /v2/health/ready
    port: 8080
  periodSeconds: 5
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: 8080
  periodSeconds: 10
  failureThreshold: 6
{{- end }}
{{- end }}

{{/* Resources and the hardened securityContext, on whichever container serves. */}}
{{- define "model-server.containerHardening" -}}
{{- with .Values.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* The stable version's settings, as model-server.implementation takes them. */}}
{{- define "model-server.stableVersion" -}}
{{- dict "storageUri" .Values.model.storageUri "image" "" "args" .Values.model.extraArgs | toJson }}
{{- end }}

{{/*
The canary version's settings: each one left empty falls back to the stable
version's, and its args follow the stable ones (a later flag wins).
*/}}
{{- define "model-server.canaryVersion" -}}
{{- $c := .Values.canary -}}
{{- $image := "" -}}
{{- if or $c.image.repository $c.image.tag -}}
{{- $image = include "model-server.imageRef" (list (default .Values.image.repository $c.image.repository) (default (default .Chart.AppVersion .Values.image.tag) $c.image.tag)) -}}
{{- end -}}
{{- dict "storageUri" (default .Values.model.storageUri $c.storageUri) "image" $image "args" (concat .Values.model.extraArgs $c.extraArgs) | toJson }}
{{- end }}

{{/* Scaling fields of the stable predictor (the canary never gets any). */}}
{{- define "model-server.scaling" -}}
{{- $a := .Values.autoscaling -}}
minReplicas: {{ $a.minReplicas }}
maxReplicas: {{ $a.maxReplicas }}
{{- if eq $a.class "hpa" }}
scaleMetric: {{ $a.hpa.metric }}
scaleTarget: {{ $a.hpa.target }}
{{- else if eq $a.class "kpa" }}
scaleMetric: {{ $a.kpa.metric }}
scaleTarget: {{ $a.kpa.target }}
{{- else if eq $a.class "keda" }}
autoScaling:
  metrics:
    - type: External
      external:
        metric:
          backend: prometheus
          serverAddress: {{ $a.keda.serverAddress | quote }}
          query: {{ include "model-server.kedaQuery" . | quote }}
        target:
          type: Value
          value: {{ $a.keda.threshold | quote }}
{{- end }}
{{- end }}

{{/* Requests/s served by the stable predictor's pods (the canary's are <name>-<canary>-predictor-*). */}}
{{- define "model-server.kedaQuery" -}}
{{- if .Values.autoscaling.keda.query }}
{{- .Values.autoscaling.keda.query }}
{{- else }}
{{- printf "sum(rate(model_server_requests_total{namespace=%q,pod=~%q}[1m]))" .Release.Namespace (printf "%s-predictor-.*" (include "model-server.isvcName" .)) }}
{{- end }}
{{- end }}

{{/* Rules values.schema.json cannot express (they compare two values). */}}
{{- define "model-server.validate" -}}
{{- $a := .Values.autoscaling -}}
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
