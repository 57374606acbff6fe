{{/*
Names and labels.
*/}}

{{- define "repcache.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: RELEASE-repcache, or RELEASE when it already contains the chart
name; 63 characters at most (DNS label).
*/}}
{{- define "repcache.fullname" -}}
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

{{- define "repcache.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the lifetime of a release (Deployment selectors
are immutable).
*/}}
{{- define "repcache.selectorLabels" -}}
app.kubernetes.io/name: {{ include "repcache.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The standard labels of every resource.
*/}}
{{- define "repcache.labels" -}}
helm.sh/chart: {{ include "repcache.chart" . }}
{{ include "repcache.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: cache
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "repcache.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "repcache.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "repcache.image" -}}
{{- $img := .Values.image -}}
{{- $repo := $img.repository -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $img.repository }}{{ end -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo ($img.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}
{{- end }}

{{/*
The Secret holding the Redis password, and whether there is one.
*/}}
{{- define "repcache.redisSecretName" -}}
{{- .Values.redisAuth.existingSecret | default (include "repcache.fullname" .) }}
{{- end }}

{{- define "repcache.createRedisSecret" -}}
{{- if and .Values.redisAuth.password (not .Values.redisAuth.existingSecret) }}true{{ end }}
{{- end }}

{{- define "repcache.hasRedisPassword" -}}
{{- if or .Values.redisAuth.password .Values.redisAuth.existingSecret }}true{{ end }}
{{- end }}

{{/*
Checks that fail the rendering with a message naming the value to change.
*/}}
{{- define "repcache.validate" -}}
{{- if and (eq .Values.mode "sidecar") .Values.metrics.serviceMonitor.enabled }}
{{- fail "metrics.serviceMonitor.enabled: sidecar mode has no Service to monitor; use metrics.podMonitor (with metrics.podMonitor.selector matching the Postfix pods)" }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") .Values.metrics.podMonitor.enabled (not .Values.metrics.podMonitor.selector) }}
{{- fail "metrics.podMonitor.selector: in sidecar mode, give the labels of the Postfix pods that carry the repcache container" }}
{{- end }}
{{- if and (eq .Values.config.cache.backend "memcached") (not .Values.config.cache.memcached.servers) }}
{{- fail "config.cache.memcached.servers: cache.backend memcached needs at least one server (host:port)" }}
{{- end }}
{{- if and (eq .Values.config.backup.backend "redis") (not .Values.config.backup.redis.addrs) }}
{{- fail "config.backup.redis.addrs: backup.backend redis needs at least one address (host:port)" }}
{{- end }}
{{- if and (eq .Values.mode "standalone") (gt (int .Values.replicaCount) 1) (ne .Values.config.cache.backend "memcached") }}
{{- fail (printf "replicaCount: %d replicas with config.cache.backend %s would be %d separate caches (a client that passed through one replica is new on the others); set config.cache.backend memcached with config.cache.memcached.servers (one cache for every replica), or replicaCount 1" (int .Values.replicaCount) .Values.config.cache.backend (int .Values.replicaCount)) }}
{{- end }}
{{- if and .Values.pdb.minAvailable .Values.pdb.maxUnavailable }}
{{- fail "pdb: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- end }}
