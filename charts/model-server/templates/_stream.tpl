{{/* The stream consumer (python -m model_server.stream) and the Knative Eventing pipeline. */}}

{{- define "model-server.streamName" -}}
{{- printf "%s-stream" (include "model-server.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "model-server.streamGroup" -}}
{{- default (include "model-server.streamName" .) .Values.stream.groupId }}
{{- end }}

{{- define "model-server.streamSelectorLabels" -}}
{{ include "model-server.selectorLabels" . }}
app.kubernetes.io/component: stream
{{- end }}

{{/*
checkov findings that hold for the predictor's container as well (checkov cannot see
inside KServe's CRDs), settled by the image and image.tag, not by the consumer's Deployment.
*/}}
{{- define "model-server.streamCheckovSkips" -}}
checkov.io/skip1: CKV_K8S_43=Same image reference as the predictor, chosen by the user (tag or digest in image.tag)
checkov.io/skip2: CKV_K8S_15=Same image and pullPolicy as the predictor (IfNotPresent also works with kind-loaded images)
checkov.io/skip3: CKV_K8S_40=The server image's user is UID 1000, as the predictor's; runAsNonRoot is enforced
checkov.io/skip4: CKV_K8S_35=aiokafka takes the SASL password as a string; a secretKeyRef keeps it out of the pod spec
{{- end }}

{{/* The consumer's flags; extraArgs last, so they win. */}}
{{- define "model-server.streamArgs" -}}
{{- $s := .Values.stream -}}
- --model_name={{ include "model-server.isvcName" . }}
- --model_dir=/mnt/models
- --http_port={{ .Values.containerPorts.http }}
- --bootstrap_servers={{ $s.bootstrapServers }}
- --input_topic={{ $s.inputTopic }}
- --output_topic={{ $s.outputTopic }}
{{- with $s.errorTopic }}
- --error_topic={{ . }}
{{- end }}
- --group_id={{ include "model-server.streamGroup" . }}
- --max_in_flight={{ $s.maxInFlight }}
- --workers={{ $s.workers }}
- --security_protocol={{ $s.securityProtocol }}
{{- if hasPrefix "SASL" $s.securityProtocol }}
- --sasl_mechanism={{ $s.sasl.mechanism }}
{{- end }}
{{- if $s.tls.secretName }}
- --tls_ca=/etc/kafka-tls/ca.crt
{{- end }}
{{- with $s.extraArgs }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The eventing pipeline's names. */}}
{{- define "model-server.brokerName" -}}
{{- default (include "model-server.fullname" .) .Values.eventing.broker.name }}
{{- end }}

{{- define "model-server.eventingName" -}}
{{- printf "%s-eventing" (include "model-server.fullname" .) | trunc 55 | trimSuffix "-" }}
{{- end }}

{{/* The predict URL path the request Trigger calls, relative to the InferenceService's address. */}}
{{- define "model-server.predictPath" -}}
{{- $name := include "model-server.isvcName" . -}}
{{- if eq .Values.eventing.protocol "v1" }}/v1/models/{{ $name }}:predict{{ else }}/v2/models/{{ $name }}/infer{{ end }}
{{- end }}
