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
{{- if .Values.model.requireSha256 }}
- --require_sha256=true
{{- end }}
{{- end }}

{{/* --workers: the value, or 1 where a load must reach every process (the repository API, --watch). */}}
{{- define "model-server.workers" -}}
{{- if or .Values.server.repositoryApi .Values.multiModel.enabled -}}
1
{{- else -}}
{{ .Values.workers }}
{{- end -}}
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
  httpGet:
    path: /v2/health/ready
    port: {{ .Values.containerPorts.http }}
  periodSeconds: 5
livenessProbe:
  httpGet:
    path: /v2/health/live
    port: {{ .Values.containerPorts.http }}
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
{{- include "model-server.containerSecurity" . }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* The hardened securityContext of every container of ours (the stream consumer's too). */}}
{{- define "model-server.containerSecurity" -}}
{{- with .Values.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
