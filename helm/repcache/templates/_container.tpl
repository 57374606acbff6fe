{{/*
The repcache container, shared by the Deployment (standalone mode) and the
sidecar snippets. Takes (dict "ctx" $ "sidecar" bool "native" bool).
*/}}
{{- define "repcache.container" -}}
{{- $ := .ctx -}}
{{- $v := $.Values -}}
{{- $admin := ternary "repcache-admin" "admin" .sidecar -}}
- name: {{ ternary $v.sidecar.name "repcache" .sidecar }}
  image: {{ include "repcache.image" $ | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if .native }}
  # A native sidecar: started before the Postfix container, stopped after it.
  restartPolicy: Always
  {{- end }}
  args:
    - --config=/etc/repcache/repcache.yaml
    {{- range $v.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- if or (include "repcache.hasRedisPassword" $) $v.extraEnv }}
  env:
    {{- if include "repcache.hasRedisPassword" $ }}
    - name: REPCACHE_BACKUP__REDIS__PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "repcache.redisSecretName" $ }}
          key: {{ $v.redisAuth.existingSecretPasswordKey }}
    {{- end }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with $v.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    {{- if not .sidecar }}
    - name: memcache
      containerPort: {{ $v.containerPorts.memcache }}
      protocol: TCP
    {{- end }}
    - name: {{ $admin }}
      containerPort: {{ $v.containerPorts.admin }}
      protocol: TCP
  {{- range $probe := list "startupProbe" "livenessProbe" "readinessProbe" }}
  {{- $p := get $v $probe }}
  {{- if $p.enabled }}
  {{ $probe }}:
    httpGet:
      path: {{ ternary "/readyz" "/livez" (eq $probe "readinessProbe") }}
      port: {{ $admin }}
    {{- toYaml (omit $p "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with $v.lifecycle }}
  lifecycle:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.containerSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: {{ ternary $v.sidecar.volumeName "config" .sidecar }}
      mountPath: /etc/repcache
      readOnly: true
    {{- if .sidecar }}
    # The unix socket Postfix connects to: mount this volume in the Postfix
    # container at the same path.
    - name: {{ $v.sidecar.socket.volumeName }}
      mountPath: {{ $v.sidecar.socket.dir }}
    {{- end }}
    {{- with $v.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/*
repcache.sidecarContainer: the repcache container for a Postfix pod's
"containers" list (one list item). With Kubernetes 1.29 or later prefer
repcache.sidecarInitContainer. Use it from a chart that has this chart as a
dependency, or see NOTES.txt (helm install --set mode=sidecar) for the
rendered YAML:

  containers:
    - name: postfix
      ...
    {{- include "repcache.sidecarContainer" .Subcharts.repcache | nindent 4 }}
  volumes:
    {{- include "repcache.sidecarVolumes" .Subcharts.repcache | nindent 4 }}
*/}}
{{- define "repcache.sidecarContainer" -}}
{{- include "repcache.container" (dict "ctx" . "sidecar" true "native" false) }}
{{- end }}

{{/*
repcache.sidecarInitContainer: the repcache container as a native sidecar
for the Postfix pod's "initContainers" list (restartPolicy: Always): it is
started, and passes its startup probe, before Postfix starts, and outlives
Postfix at shutdown, so Postfix never runs without its cache.
*/}}
{{- define "repcache.sidecarInitContainer" -}}
{{- include "repcache.container" (dict "ctx" . "sidecar" true "native" true) }}
{{- end }}

{{/*
repcache.sidecarVolumes: the volumes the sidecar container mounts (list
items): its configuration, and the emptyDir that holds its socket, which
the Postfix container mounts too (at sidecar.socket.dir).
*/}}
{{- define "repcache.sidecarVolumes" -}}
- name: {{ .Values.sidecar.volumeName }}
  configMap:
    name: {{ include "repcache.fullname" . }}
- name: {{ .Values.sidecar.socket.volumeName }}
  emptyDir: {}
{{- end }}

{{/*
repcache.checksums: pod annotations that change when the configuration or
the chart-made Secret does, so that a "helm upgrade" rolls the pods.
*/}}
{{- define "repcache.checksums" -}}
checksum/config: {{ include "repcache.config" . | sha256sum }}
{{- if include "repcache.createRedisSecret" . }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}
