{{/* Names and labels. */}}
{{- define "lanner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lanner.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lanner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "lanner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lanner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lanner.labels" -}}
helm.sh/chart: {{ include "lanner.chart" . }}
{{ include "lanner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lanner
{{- end -}}

{{/* The labels of one component: (dict "root" $ "component" "executor"). */}}
{{- define "lanner.componentSelectorLabels" -}}
{{ include "lanner.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lanner.componentLabels" -}}
{{ include "lanner.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "lanner.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "lanner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lanner.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lanner.secretName" -}}
{{- default (printf "%s-secrets" (include "lanner.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "lanner.embedded" -}}
{{- if and (eq .Values.mode "standalone") .Values.standalone.embedded -}}true{{- end -}}
{{- end -}}

{{- define "lanner.storageClaim" -}}
{{- default (printf "%s-storage" (include "lanner.fullname" .)) .Values.storage.persistence.existingClaim -}}
{{- end -}}

{{/*
The LANNER_* settings, as a map of variable name -> string: `config` (by settings field name,
maps and lists as JSON) under the values the chart owns (queue, data_dir, host, ports).
*/}}
{{- define "lanner.settings" -}}
{{- $out := dict -}}
{{- range $key, $value := .Values.config -}}
{{- if not (kindIs "invalid" $value) -}}
{{- $name := printf "LANNER_%s" (upper $key) -}}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) -}}
{{- $_ := set $out $name (toJson $value) -}}
{{- else if and (kindIs "float64" $value) (eq $value (float64 (int64 $value))) -}}
{{- /* a whole number: 1000000, never 1e+06 */ -}}
{{- $_ := set $out $name (toString (int64 $value)) -}}
{{- else -}}
{{- $_ := set $out $name (toString $value) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if include "lanner.embedded" . -}}
{{- $_ := set $out "LANNER_QUEUE" "sqlite" -}}
{{- $_ := set $out "LANNER_REPOSITORY" "sqlite" -}}
{{- $_ := set $out "LANNER_STORAGE" "local" -}}
{{- else -}}
{{- $_ := set $out "LANNER_QUEUE" "kafka" -}}
{{- end -}}
{{- $_ := set $out "LANNER_DATA_DIR" "/var/lib/lanner" -}}
{{- $_ := set $out "LANNER_HOST" "0.0.0.0" -}}
{{- $_ := set $out "LANNER_PORT" (toString .Values.ports.http) -}}
{{- $_ := set $out "LANNER_METRICS_PORT" (toString .Values.ports.management) -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The chart's checks of the values, failing the render with the fix. */}}
{{- define "lanner.validate" -}}
{{- if not (has .Values.mode (list "standalone" "distributed")) -}}
{{- fail (printf "mode: %v: use standalone or distributed" .Values.mode) -}}
{{- end -}}
{{- if hasKey .Values.config "queue" -}}
{{- fail "config.queue: the chart sets the queue (kafka; sqlite with standalone.embedded): remove it" -}}
{{- end -}}
{{- if and (eq .Values.mode "distributed") (eq (toString (default "sqlite" .Values.config.repository)) "sqlite") -}}
{{- fail "config.repository: sqlite cannot be shared by separate pods: distributed mode needs repository: elasticsearch (or mode: standalone)" -}}
{{- end -}}
{{- if and (eq .Values.mode "standalone") (gt (int .Values.standalone.replicas) 1) -}}
{{- fail "standalone.replicas: one standalone pod (its data volume and SQLite are its own): use mode: distributed to scale" -}}
{{- end -}}
{{- range .Values.workerGroups -}}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .key)) -}}
{{- fail (printf "workerGroups: key %q: use lower-case letters, digits and '-' (it names a Deployment)" (toString .key)) -}}
{{- end -}}
{{- if eq (toString .key) "default" -}}
{{- fail "workerGroups: key default names the workers of `worker`: choose another key" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Pod-level parts shared by every component Deployment. */}}
{{- define "lanner.podSpecCommon" -}}
serviceAccountName: {{ include "lanner.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* envFrom + env of a component container: (dict "root" $ "env" list-of-extra-env). */}}
{{- define "lanner.containerEnv" -}}
envFrom:
  - configMapRef:
      name: {{ include "lanner.fullname" .root }}
  - secretRef:
      name: {{ include "lanner.secretName" .root }}
env:
  # a stable name per pod: the executor's static group membership, the worker's id
  - name: LANNER_INSTANCE_ID
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
{{- with .env }}
{{- toYaml . | nindent 2 }}
{{- end }}
{{- range $name, $value := .root.Values.extraEnv }}
  - name: {{ $name }}
    value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* Probes on a named port: (dict "root" $ "port" "management"). */}}
{{- define "lanner.probes" -}}
{{- $p := .root.Values.probes -}}
startupProbe:
  httpGet:
    path: /health/live
    port: {{ .port }}
  {{- toYaml $p.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /health/live
    port: {{ .port }}
  {{- toYaml $p.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /health/ready
    port: {{ .port }}
  {{- toYaml $p.readiness | nindent 2 }}
{{- end -}}

{{/* Scheduling of a component: (dict "root" $ "values" component-values). */}}
{{- define "lanner.scheduling" -}}
{{- with (default .root.Values.nodeSelector .values.nodeSelector) }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.tolerations .values.tolerations) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default .root.Values.affinity .values.affinity) }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod template annotations: roll the pods when the settings or secrets change. */}}
{{- define "lanner.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The volume of the internal storage, mounted at /var/lib/lanner/storage. */}}
{{- define "lanner.storageVolume" -}}
- name: storage
{{- if .Values.storage.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "lanner.storageClaim" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end -}}

{{/*
One component Deployment:
  (dict "root" $ "component" "executor" "name" "<fullname>-executor" "values" .Values.executor
        "args" (list "server" "executor") "env" list "volumes" list "mounts" list
        "replicas" true "port" "management")
*/}}
{{- define "lanner.deployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "lanner.componentLabels" . | nindent 4 }}
    {{- with .group }}
    lanner.io/worker-group: {{ . }}
    {{- end }}
spec:
  {{- if .replicas }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  {{- with .strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "lanner.componentSelectorLabels" . | nindent 6 }}
      {{- with .group }}
      lanner.io/worker-group: {{ . }}
      {{- end }}
  template:
    metadata:
      labels:
        {{- include "lanner.componentSelectorLabels" . | nindent 8 }}
        # serves /metrics: selected by the -metrics Service (the kafka-init Job's pod is not)
        lanner.io/metrics: "true"
        {{- with .group }}
        lanner.io/worker-group: {{ . }}
        {{- end }}
        {{- with $root.Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- include "lanner.podAnnotations" $root | nindent 8 }}
    spec:
      {{- include "lanner.podSpecCommon" $root | nindent 6 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- include "lanner.scheduling" (dict "root" $root "values" $v) | nindent 6 }}
      containers:
        - name: {{ .component }}
          image: {{ include "lanner.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            {{- toYaml (concat .args (default list $v.extraArgs)) | nindent 12 }}
          {{- include "lanner.containerEnv" (dict "root" $root "env" .env) | nindent 10 }}
          ports:
            {{- if .http }}
            - name: http
              containerPort: {{ $root.Values.ports.http }}
              protocol: TCP
            {{- end }}
            {{- if ne .port "http" }}
            - name: management
              containerPort: {{ $root.Values.ports.management }}
              protocol: TCP
            {{- end }}
          {{- include "lanner.probes" (dict "root" $root "port" .port) | nindent 10 }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: data
              mountPath: /var/lib/lanner
            - name: tmp
              mountPath: /tmp
            {{- if .storage }}
            - name: storage
              mountPath: /var/lib/lanner/storage
            {{- end }}
      volumes:
        - name: data
          {{- toYaml .dataVolume | nindent 10 }}
        - name: tmp
          emptyDir: {}
        {{- if .storage }}
        {{- include "lanner.storageVolume" $root | nindent 8 }}
        {{- end }}
{{- end -}}
