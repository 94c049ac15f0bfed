{{/* The predictor spec: pod-level fields and the implementation, for the stable and the canary version. */}}

{{/*
Pod-level fields shared by the stable and the canary predictor. labels and
annotations are the predictor's own fields: KServe puts them on the predictor
pods only (not on the InferenceService, its transformer or explainer).
*/}}
{{- define "model-server.predictorPod" -}}
{{- include "model-server.podServiceAccount" . }}
{{- if eq .Values.deploymentMode "Standard" }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- with .Values.podLabels }}
labels:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "model-server.podPlacementAndSecurity" . }}
volumes:
  - name: tmp
    emptyDir:
      sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
  {{- with .Values.model.onnx.cacheClaimName }}
  - name: onnx-cache
    persistentVolumeClaim:
      claimName: {{ . }}
  {{- end }}
  {{- range include "model-server.secretMounts" . | fromJsonArray }}
  - name: {{ index . 0 }}
    secret:
      secretName: {{ index . 1 }}
  {{- end }}
{{- end }}

{{/* Pod fields every pod of ours shares (the stream consumer's too): pull secrets, the hardened
pod securityContext, scheduling. */}}
{{- define "model-server.podPlacementAndSecurity" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
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
      {{- include "model-server.serverArgs" .root | trim | nindent 6 }}
      {{- range .args }}
      - {{ . | quote }}
      {{- end }}
    {{- $env := include "model-server.serverEnv" .root | trim }}
    {{- if or .storageUri $env }}
    env:
      {{- with .storageUri }}
      # Makes KServe's storage initializer download the model into /mnt/models.
      - name: STORAGE_URI
        value: {{ . | quote }}
      {{- end }}
      {{- with $env }}
      {{- . | nindent 6 }}
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
  {{- with include "model-server.serverEnv" .root | trim }}
  env:
    {{- . | nindent 4 }}
  {{- end }}
  {{- include "model-server.containerHardening" .root | trim | nindent 2 }}
{{- end }}
{{- end }}

{{/* The stable version's settings, as model-server.implementation takes them. */}}
{{- define "model-server.stableVersion" -}}
{{- dict "storageUri" (ternary "" .Values.model.storageUri .Values.multiModel.enabled) "image" "" "args" .Values.model.extraArgs | toJson }}
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
