{{/* The server container: what our ServingRuntime and the custom container share, and its hardening. */}}

{{/* The server's flags after --model_name (shared by our runtime and the custom container). */}}
{{- define "model-server.serverArgs" -}}
{{- if .Values.multiModel.enabled }}
- --model_repository=/mnt/models
- --watch=true
{{- else }}
- --model_dir=/mnt/models
{{- end }}
- {{ printf "--http_port=%d" (int .Values.containerPorts.http) | quote }}
- {{ printf "--grpc_port=%d" (int .Values.containerPorts.grpc) | quote }}
- {{ printf "--workers=%v" (include "model-server.workers" .) | quote }}
- {{ printf "--drain_seconds=%v" .Values.server.drainSeconds | quote }}
- {{ printf "--grace_seconds=%v" .Values.server.graceSeconds | quote }}
- {{ printf "--repository_api=%t" (or .Values.server.repositoryApi .Values.multiModel.enabled) | quote }}
{{- with .Values.model.onnx }}
{{- if ne (int .intraOpThreads) 1 }}
- {{ printf "--onnx_intra_op_threads=%d" (int .intraOpThreads) | quote }}
{{- end }}
{{- if ne (int .interOpThreads) 1 }}
- {{ printf "--onnx_inter_op_threads=%d" (int .interOpThreads) | quote }}
{{- end }}
{{- if ne .graphOptimization "all" }}
- {{ printf "--onnx_graph_optimization=%s" .graphOptimization | quote }}
{{- end }}
{{- if .warmup }}
- --onnx_warmup=true
{{- end }}
{{- with .cacheDir }}
- {{ printf "--onnx_cache_dir=%s" . | quote }}
{{- end }}
{{- end }}
{{- if .Values.model.requireSha256 }}
- --require_sha256=true
{{- end }}
{{- with .Values.payloadLog }}
{{- if ne .mode "off" }}
- {{ printf "--log_payloads=%s" .mode | quote }}
- {{ printf "--log_sink=%s" .sink | quote }}
- {{ printf "--log_sample_rate=%v" .sampleRate | quote }}
- {{ printf "--log_queue_size=%v" (int .queueSize) | quote }}
- {{ printf "--log_roll_seconds=%v" .rollSeconds | quote }}
- {{ printf "--log_roll_mb=%v" .rollMb | quote }}
{{- end }}
{{- end }}
{{- with .Values.tls.secretName }}
- --tls_cert=/etc/model-server/tls/tls.crt
- --tls_key=/etc/model-server/tls/tls.key
{{- end }}
{{- with .Values.tls.clientCaSecretName }}
- --tls_client_ca=/etc/model-server/client-ca/ca.crt
{{- end }}
{{- $auth := .Values.auth }}
{{- if ne $auth.mode "none" }}
- {{ printf "--auth=%s" $auth.mode | quote }}
{{- end }}
{{- if eq $auth.mode "api_key" }}
- --auth_api_keys_file=/etc/model-server/api-keys/api-keys
{{- else if eq $auth.mode "jwt" }}
- {{ printf "--auth_jwks=%s" (ternary "/etc/model-server/jwks/jwks.json" $auth.jwt.jwksUrl (ne $auth.jwt.jwksSecretName "")) | quote }}
- {{ printf "--auth_jwt_issuer=%s" $auth.jwt.issuer | quote }}
- {{ printf "--auth_jwt_audience=%s" $auth.jwt.audience | quote }}
{{- end }}
{{- if $auth.metrics }}
- --auth_metrics=true
{{- end }}
{{- end }}

{{/* Secrets the server reads its TLS files and credentials from: (volume name, Secret, mount path). */}}
{{- define "model-server.secretMounts" -}}
{{- $mounts := list -}}
{{- with .Values.tls.secretName }}{{ $mounts = append $mounts (list "tls" . "/etc/model-server/tls") }}{{ end -}}
{{- with .Values.tls.clientCaSecretName }}{{ $mounts = append $mounts (list "client-ca" . "/etc/model-server/client-ca") }}{{ end -}}
{{- if eq .Values.auth.mode "api_key" }}{{ $mounts = append $mounts (list "api-keys" .Values.auth.apiKeys.secretName "/etc/model-server/api-keys") }}{{ end -}}
{{- if and (eq .Values.auth.mode "jwt") .Values.auth.jwt.jwksSecretName }}{{ $mounts = append $mounts (list "jwks" .Values.auth.jwt.jwksSecretName "/etc/model-server/jwks") }}{{ end -}}
{{- toJson $mounts -}}
{{- end }}

{{/* --workers: the value (with the repository API too: the supervisor loads, docs/server.md#workers). */}}
{{- define "model-server.workers" -}}
{{ .Values.workers }}
{{- end }}

{{/* The server's environment: model.env, and the management token from its Secret. */}}
{{- define "model-server.serverEnv" -}}
{{- with .Values.server.managementTokenSecret }}
- name: MODEL_SERVER_MANAGEMENT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: token
{{- end }}
{{- with .Values.model.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Ports and probes of the server container (containerPorts). Standard mode
exposes REST (http1) and gRPC (h2c, the name KServe needs for gRPC); Knative
allows one port, so there gRPC (model.protocolVersion grpc-v2) replaces REST
and the HTTP probes.
*/}}
{{- define "model-server.serverPortsAndProbes" -}}
{{- $grpcOnly := and (eq .Values.deploymentMode "Knative") (eq .Values.model.protocolVersion "grpc-v2") -}}
ports:
  {{- if not $grpcOnly }}
  - name: http1
    containerPort: {{ .Values.containerPorts.http }}
    protocol: TCP
  {{- end }}
  {{- if or $grpcOnly (eq .Values.deploymentMode "Standard") }}
  - name: h2c
    containerPort: {{ .Values.containerPorts.grpc }}
    protocol: TCP
  {{- end }}
{{- if not $grpcOnly }}
readinessProbe:
  {{- include "model-server.probe" (list . "/v2/health/ready") | trim | nindent 2 }}
  periodSeconds: 5
livenessProbe:
  {{- include "model-server.probe" (list . "/v2/health/live") | trim | nindent 2 }}
  periodSeconds: 10
  failureThreshold: 6
{{- end }}
{{- end }}

{{/*
How a probe reaches a health path: HTTP, or HTTPS with tls (the kubelet does not
verify the certificate). With mutual TLS the kubelet has no client certificate,
so the probe runs in the container: Python's standard library over HTTPS,
presenting the pod's own certificate (issued for client auth too).
*/}}
{{- define "model-server.probe" -}}
{{- $root := index . 0 -}}
{{- $path := index . 1 -}}
{{- $port := $root.Values.containerPorts.http -}}
{{- if $root.Values.tls.clientCaSecretName }}
exec:
  command:
    - python
    - -c
    - "import ssl, sys, urllib.request; c = ssl._create_unverified_context(); c.load_cert_chain(sys.argv[2], sys.argv[3]); urllib.request.urlopen(sys.argv[1], context=c, timeout=4)"
    - {{ printf "https://127.0.0.1:%d%s" (int $port) $path | quote }}
    - /etc/model-server/tls/tls.crt
    - /etc/model-server/tls/tls.key
timeoutSeconds: 5
{{- else }}
httpGet:
  path: {{ $path }}
  port: {{ $port }}
  {{- if $root.Values.tls.secretName }}
  scheme: HTTPS
  {{- end }}
{{- end }}
{{- end }}

{{/* Resources and the hardened securityContext, on whichever container serves. */}}
{{- define "model-server.containerHardening" -}}
{{- with .Values.resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "model-server.containerSecurity" . }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if .Values.model.onnx.cacheClaimName }}
  - name: onnx-cache
    mountPath: {{ .Values.model.onnx.cacheDir }}
  {{- end }}
  {{- range include "model-server.secretMounts" . | fromJsonArray }}
  - name: {{ index . 0 }}
    mountPath: {{ index . 2 }}
    readOnly: true
  {{- end }}
{{- end }}

{{/* The hardened securityContext of every container of ours (the stream consumer's too). */}}
{{- define "model-server.containerSecurity" -}}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
