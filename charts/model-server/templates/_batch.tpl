{{/* The batch scoring Job: its name, and the Job spec the one-off Job and the CronJob share. */}}

{{/*
The Job's name carries a run id: batch.runId, or a hash of the Job spec. A
Job's pod template is immutable, so a `helm upgrade` that changed it in place
would fail; with the spec in the name, a changed spec is a new Job (Helm
deletes the old one), an unchanged one stays as it is (no rerun). Short: the
pods are named <job>-<index>-<random> and their hostnames <job>-<index>.
*/}}
{{- define "model-server.batchJobName" -}}
{{- $id := .Values.batch.runId | default (include "model-server.batchJobSpec" . | sha256sum | trunc 8) -}}
{{- printf "%s-batch-%s" (include "model-server.fullname" . | trunc 40 | trimSuffix "-") $id | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
The model: KServe's storage initializer downloads model.storageUri into
/mnt/models (an emptyDir) before the scorer starts, as it does for the
predictor; without a storageUri the image's own /mnt/models scores.
*/}}
{{/* checkov findings that do not apply to the batch pods (on the Job, the CronJob and the pods). */}}
{{- define "model-server.batchCheckovSkips" -}}
checkov.io/skip1: CKV_K8S_43=Same image reference as the server, chosen by the user (tag or digest in image.tag)
checkov.io/skip2: CKV_K8S_15=Same image and pullPolicy as the server (IfNotPresent also works with kind-loaded images)
checkov.io/skip3: CKV_K8S_40=The server image's user is UID 1000; runAsNonRoot is enforced
checkov.io/skip4: CKV_K8S_35=The AWS SDK and KServe's storage initializer read object-store credentials from these variables
checkov.io/skip5: CKV2_K8S_6=Batch pods receive no traffic; the opt-in NetworkPolicy guards the predictor pods that do
{{- end }}

{{- define "model-server.batchJobSpec" -}}
{{- $b := .Values.batch -}}
completionMode: Indexed
completions: {{ $b.shards }}
parallelism: {{ $b.parallelism | default $b.shards }}
# Per index: a failed shard is retried (and resumes from its manifest) without
# restarting the others.
backoffLimitPerIndex: {{ $b.backoffLimitPerIndex }}
{{- with $b.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
ttlSecondsAfterFinished: {{ $b.ttlSecondsAfterFinished }}
podFailurePolicy:
  rules:
    # Exit code 2: the shard finished, but refused rows (its errors file names
    # them). Another try scores nothing new: mark the index failed at once.
    - action: FailIndex
      onExitCodes:
        containerName: batch
        operator: In
        values: [2]
    # A drained or preempted node is not the shard's failure.
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  metadata:
    labels:
      {{- include "model-server.selectorLabels" . | nindent 6 }}
      app.kubernetes.io/component: batch
      {{- with .Values.podLabels }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    annotations:
      {{- include "model-server.batchCheckovSkips" . | nindent 6 }}
      {{- with .Values.podAnnotations }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
  spec:
    restartPolicy: Never
    {{- include "model-server.podServiceAccount" . | nindent 4 }}
    {{- with .Values.imagePullSecrets }}
    imagePullSecrets:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.podSecurityContext }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with .Values.affinity }}
    affinity:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- if .Values.model.storageUri }}
    initContainers:
      - name: storage-initializer
        image: {{ $b.storageInitializer.image | quote }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        args:
          - {{ .Values.model.storageUri | quote }}
          - /mnt/models
        {{- with $b.env }}
        env:
          {{- toYaml . | nindent 10 }}
        {{- end }}
        resources:
          {{- toYaml $b.storageInitializer.resources | nindent 10 }}
        {{- include "model-server.containerSecurity" . | trim | nindent 8 }}
        volumeMounts:
          - name: tmp
            mountPath: /tmp
          - name: model
            mountPath: /mnt/models
    {{- end }}
    containers:
      - name: batch
        image: {{ include "model-server.image" . | quote }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        command: ["/opt/venv/bin/python", "-m", "model_server.batch"]
        args:
          - --model_dir=/mnt/models
          - {{ printf "--input=%s" $b.input | quote }}
          {{- if .Values.batch.schedule }}
          # Each scheduled run writes to its own directory, named after its Job.
          - {{ printf "--output=%s/$(JOB_NAME)" (trimSuffix "/" $b.output) | quote }}
          {{- else }}
          - {{ printf "--output=%s" $b.output | quote }}
          {{- end }}
          - {{ printf "--format=%s" $b.format | quote }}
          - {{ printf "--outputs=%s" (join "," $b.outputs) | quote }}
          {{- with $b.keepColumns }}
          - {{ printf "--keep_columns=%s" (join "," .) | quote }}
          {{- end }}
          {{- range $b.extraArgs }}
          - {{ . | quote }}
          {{- end }}
        env:
          # Kubernetes sets JOB_COMPLETION_INDEX (the shard); the shard count is ours to pass.
          - name: MODEL_SERVER_SHARD_COUNT
            value: {{ $b.shards | quote }}
          - name: JOB_NAME
            valueFrom:
              fieldRef:
                fieldPath: metadata.labels['batch.kubernetes.io/job-name']
          {{- with $b.env }}
          {{- toYaml . | nindent 10 }}
          {{- end }}
        resources:
          {{- toYaml $b.resources | nindent 10 }}
        {{- include "model-server.containerSecurity" . | trim | nindent 8 }}
        volumeMounts:
          - name: tmp
            mountPath: /tmp
          {{- if .Values.model.storageUri }}
          - name: model
            mountPath: /mnt/models
            readOnly: true
          {{- end }}
    volumes:
      - name: tmp
        emptyDir:
          sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
      {{- if .Values.model.storageUri }}
      - name: model
        emptyDir:
          sizeLimit: {{ $b.modelVolumeSizeLimit }}
      {{- end }}
{{- end }}
