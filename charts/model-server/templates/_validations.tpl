{{/*
Rules values.schema.json cannot express (they compare two values), as bitnami's
common chart keeps them: each check below returns its message (empty: the values
pass it), and model-server.validateValues, called once from NOTES.txt (which
`helm install`, `upgrade` and `template` all render), fails with every message at
once. A new check is one define here and one line in validateValues.
*/}}
{{- define "model-server.validateValues" -}}
{{- $messages := list -}}
{{- range $check := list
  "multiModel"
  "multiModelToken"
  "gracePeriod"
  "replicas"
  "canaryImplementation"
  "canaryReplicas"
  "containerPorts"
  "serviceAccount"
  "streamPartitions"
  "eventingProtocol"
  "batchPaths"
  "payloadLog"
  "onnxCache"
  "repositoryApiToken"
  "tlsKnative"
  "authMultiModel"
  "helmTestCredential" }}
{{- $messages = append $messages (include (printf "model-server.validateValues.%s" $check) $ | trim) -}}
{{- end -}}
{{- $messages = without $messages "" -}}
{{- if $messages -}}
{{- printf "\nVALUES VALIDATION:\n%s" (join "\n" $messages) | fail -}}
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.multiModel" -}}
{{- if and .Values.multiModel.enabled (or .Values.canary.enabled .Values.customContainer.enabled (not (include "model-server.ownRuntime" .))) -}}
multiModel.enabled needs this chart's ServingRuntime, and no canary or custom container: TrainedModels are loaded by KServe's agent into a multi-model runtime
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.multiModelToken" -}}
{{- if and .Values.multiModel.enabled .Values.server.managementTokenSecret -}}
multiModel.enabled with server.managementTokenSecret: KServe's agent loads models through the repository API and sends no token
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.gracePeriod" -}}
{{- $s := .Values.server -}}
{{- if and (eq .Values.deploymentMode "Standard") (le (float64 .Values.terminationGracePeriodSeconds) (addf $s.drainSeconds $s.graceSeconds)) -}}
terminationGracePeriodSeconds ({{ .Values.terminationGracePeriodSeconds }}) must exceed server.drainSeconds + server.graceSeconds ({{ addf $s.drainSeconds $s.graceSeconds }}): Kubernetes would kill the pod before it drained
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.replicas" -}}
{{- $a := .Values.autoscaling -}}
{{- if lt (int $a.maxReplicas) (int $a.minReplicas) -}}
autoscaling.maxReplicas ({{ int $a.maxReplicas }}) must be >= autoscaling.minReplicas ({{ int $a.minReplicas }})
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.canaryImplementation" -}}
{{- if and .Values.canary.enabled .Values.customContainer.enabled (eq .Values.deploymentMode "Standard") -}}
a Standard-mode canary needs a model predictor: set customContainer.enabled=false (or use Knative mode)
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.canaryReplicas" -}}
{{- $stable := max 1 (int .Values.autoscaling.minReplicas) -}}
{{- if and .Values.canary.enabled (eq .Values.deploymentMode "Standard") (gt (int .Values.canary.replicas) $stable) -}}
canary.replicas ({{ int .Values.canary.replicas }}) must not exceed the stable predictor's minReplicas ({{ $stable }}): KServe rejects it
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.containerPorts" -}}
{{- $p := .Values.containerPorts -}}
{{- if eq (int $p.http) (int $p.grpc) -}}
containerPorts.http and containerPorts.grpc must differ (both are {{ int $p.http }}): the server opens one port for each
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.serviceAccount" -}}
{{- $sa := .Values.serviceAccount -}}
{{- if and (not $sa.create) $sa.annotations -}}
serviceAccount.annotations are for the ServiceAccount this chart creates: set serviceAccount.create=true, or annotate your own ServiceAccount ({{ default "the namespace's default" $sa.name }})
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.streamPartitions" -}}
{{- $s := .Values.stream -}}
{{- if and $s.enabled $s.keda.enabled (gt (int $s.keda.minReplicas) (int $s.partitions)) -}}
stream.keda.minReplicas ({{ int $s.keda.minReplicas }}) must not exceed stream.partitions ({{ int $s.partitions }}): a replica without a partition sits idle
{{- else if and $s.enabled (not $s.keda.enabled) (gt (int $s.replicas) (int $s.partitions)) -}}
stream.replicas ({{ int $s.replicas }}) must not exceed stream.partitions ({{ int $s.partitions }}): a replica without a partition sits idle
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.eventingProtocol" -}}
{{- if and .Values.eventing.enabled (eq .Values.model.protocolVersion "grpc-v2") -}}
eventing delivers CloudEvents over HTTP: model.protocolVersion grpc-v2 serves no HTTP predict route in Knative mode; use v1 or v2
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.batchPaths" -}}
{{- if and .Values.batch.enabled (not (and .Values.batch.input .Values.batch.output)) -}}
batch.enabled needs batch.input and batch.output (local paths in the image, s3:// or gs:// URIs)
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.payloadLog" -}}
{{- if and (ne .Values.payloadLog.mode "off") (not .Values.payloadLog.sink) -}}
payloadLog.mode {{ .Values.payloadLog.mode }} needs payloadLog.sink (http(s)://, kafka://host:port/topic, s3://bucket/prefix or a folder).
{{- end -}}
{{- if and .Values.kserveLogger.enabled (not .Values.kserveLogger.url) -}}
kserveLogger.enabled needs kserveLogger.url.
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.onnxCache" -}}
{{- if and .Values.model.onnx.cacheClaimName (not .Values.model.onnx.cacheDir) -}}
model.onnx.cacheClaimName needs model.onnx.cacheDir, the path to mount it at.
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.repositoryApiToken" -}}
{{- if and .Values.server.repositoryApi (not .Values.server.managementTokenSecret) (not .Values.multiModel.enabled) -}}
server.repositoryApi needs server.managementTokenSecret: an open repository API lets anyone who reaches the pod unload its model
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.tlsKnative" -}}
{{- if and .Values.tls.secretName (eq .Values.deploymentMode "Knative") -}}
tls.secretName in Knative mode: the queue-proxy speaks plain HTTP to the container; use Knative's or the mesh's TLS (docs/security.md)
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.authMultiModel" -}}
{{- if and .Values.multiModel.enabled (ne .Values.auth.mode "none") -}}
multiModel.enabled with auth.mode {{ .Values.auth.mode }}: KServe's agent loads models through the repository API and sends no credential
{{- end -}}
{{- end }}

{{- define "model-server.validateValues.helmTestCredential" -}}
{{- if and .Values.helmTest.enabled (ne .Values.auth.mode "none") (not .Values.helmTest.credentialSecret) -}}
helmTest.enabled with auth.mode {{ .Values.auth.mode }} needs helmTest.credentialSecret (a Secret whose key token the test sends), or helmTest.enabled=false
{{- end -}}
{{- end }}


