{{/*
The repcache configuration file (repcache.yaml), from .Values.config: keys
go from camelCase to repcache's snake_case (maxBytes: max_bytes), whole
numbers stay integers, and the chart sets what Kubernetes needs: the
listen addresses for the mode, and the admin listener on all interfaces
(the kubelet probes it, Prometheus scrapes it).
*/}}
{{- define "repcache.config" -}}
{{- $cfg := include "repcache.snakeKeys" .Values.config | fromYaml -}}
{{- $_ := set $cfg "listen" (include "repcache.listen" . | fromYamlArray) -}}
{{- $_ := set $cfg "admin" (merge (dict "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.admin))) $cfg.admin) -}}
# repcache configuration, rendered by the {{ include "repcache.chart" . }} Helm chart from
# the release's values (config.*). Every key: examples/repcache.yaml.
{{ toYaml $cfg }}
{{- end }}

{{/*
The memcache listen addresses: config.listen, or the mode's default (in
sidecar mode the unix socket in the volume both containers mount: 0660,
group 65532, where a loopback port would admit every container of the pod).
Returned as a YAML list.
*/}}
{{- define "repcache.listen" -}}
{{- if .Values.config.listen }}
{{- toYaml .Values.config.listen }}
{{- else if eq .Values.mode "sidecar" }}
- {{ include "repcache.sidecarSocket" . | quote }}
{{- else }}
- {{ printf "0.0.0.0:%d" (int .Values.containerPorts.memcache) | quote }}
{{- end }}
{{- end }}

{{/*
repcache.snakeKeys: a mapping with every key, at every depth, in snake_case.
Floats with no fraction (every number read from values) become integers,
so 1000000 is not written 1e+06.
*/}}
{{- define "repcache.snakeKeys" -}}
{{- $out := dict -}}
{{- range $k, $v := . -}}
{{- $_ := set $out (snakecase $k) (include "repcache.snakeValue" $v | fromYaml).v -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{- define "repcache.snakeValue" -}}
{{- $v := . -}}
{{- if kindIs "map" $v -}}
{{- $v = include "repcache.snakeKeys" $v | fromYaml -}}
{{- else if kindIs "slice" $v -}}
{{- $l := list -}}
{{- range $v -}}
{{- $l = append $l (include "repcache.snakeValue" . | fromYaml).v -}}
{{- end -}}
{{- $v = $l -}}
{{- else if and (kindIs "float64" $v) (eq (floor $v) $v) -}}
{{- $v = int64 $v -}}
{{- end -}}
{{- toYaml (dict "v" $v) -}}
{{- end }}

{{/*
repcache.sidecarSocket: sidecar mode's default listener, unix:DIR/repcache.sock.
*/}}
{{- define "repcache.sidecarSocket" -}}
{{- printf "unix:%s/repcache.sock" .Values.sidecar.socket.dir -}}
{{- end }}

{{/*
repcache.memcachePorts: the TCP ports repcache serves memcache on (the
listen addresses and config.listeners), as a YAML list of numbers.
*/}}
{{- define "repcache.memcachePorts" -}}
{{- $ports := list -}}
{{- $addrs := include "repcache.listen" . | fromYamlArray -}}
{{- range .Values.config.listeners }}{{ $addrs = append $addrs .address }}{{ end -}}
{{- range $addrs -}}
{{- $a := toString . -}}
{{- if not (hasPrefix "unix:" $a) -}}
{{- $ports = append $ports (regexFind "[0-9]+$" $a | int) -}}
{{- end -}}
{{- end -}}
{{- toYaml ($ports | uniq) -}}
{{- end }}
