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
