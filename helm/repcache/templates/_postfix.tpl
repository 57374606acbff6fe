{{/*
The Postfix side: the main.cf lines and memcache table files that
`repcache postfix-config --table-dir postfix.tableDir` prints for the
rendered configuration, line for line (helm/chart_test.go compares them
with the binary's output), except that the memcache address is the one
Postfix reaches repcache by: the Service in standalone mode.
*/}}

{{/*
repcache.postfix.endpoint: {addr, note} as YAML. The note is the comment the
binary adds when it had to guess 127.0.0.1 for an all-interfaces listener.
*/}}
{{- define "repcache.postfix.endpoint" -}}
{{- $addr := "" -}}
{{- $note := "" -}}
{{- if .Values.postfix.memcacheAddress -}}
{{- $addr = .Values.postfix.memcacheAddress -}}
{{- else if eq .Values.mode "standalone" -}}
{{- $addr = printf "inet:%s.%s.svc.%s:%d" (include "repcache.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.service.port) -}}
{{- else -}}
{{- $first := first (include "repcache.listen" . | fromYamlArray) | toString -}}
{{- if hasPrefix "unix:" $first -}}
{{- $addr = $first -}}
{{- else -}}
{{- $i := regexFind ":[^:]*$" $first -}}
{{- $host := trimSuffix $i $first | trimPrefix "[" | trimSuffix "]" -}}
{{- $port := trimPrefix ":" $i -}}
{{- if has $host (list "" "0.0.0.0" "::" "0:0:0:0:0:0:0:0") -}}
{{- $note = printf " (it listens on %s; use the address Postfix reaches it by)" $first -}}
{{- $host = "127.0.0.1" -}}
{{- end -}}
{{- if contains ":" $host -}}
{{- $host = printf "[%s]" $host -}}
{{- end -}}
{{- $addr = printf "inet:%s:%s" $host $port -}}
{{- end -}}
{{- end -}}
{{- toYaml (dict "addr" $addr "note" $note) -}}
{{- end }}

{{/*
repcache.seconds: a Go duration ("168h", "1h30m", "90s") in whole seconds.
*/}}
{{- define "repcache.seconds" -}}
{{- $units := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]*\\.?[0-9]+(ns|us|µs|ms|h|m|s)" (toString .) -1 -}}
{{- $unit := regexFind "(ns|us|µs|ms|h|m|s)$" . -}}
{{- $n := trimSuffix $unit . | float64 -}}
{{- $total = addf $total (mulf $n (get $units $unit)) -}}
{{- end -}}
{{- floor $total | int64 -}}
{{- end }}

{{/*
repcache.postfixDuration: seconds in Postfix's largest exact unit (w d h m s).
*/}}
{{- define "repcache.postfixDuration" -}}
{{- $s := int64 . -}}
{{- $out := printf "%ds" $s -}}
{{- if ne $s 0 -}}
{{- range $u := list (list 604800 "w") (list 86400 "d") (list 3600 "h") (list 60 "m") -}}
{{- $n := int64 (index $u 0) -}}
{{- if and (eq (mod $s $n) 0) (hasSuffix "s" $out) -}}
{{- $out = printf "%d%s" (div $s $n) (index $u 1) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $out -}}
{{- end }}

{{- define "repcache.postfix.tablePath" -}}
{{- printf "%s/repcache-%s.cf" (.dir | trimSuffix "/") .name -}}
{{- end }}

{{/*
repcache.postfix.mainCf: the main.cf lines.
*/}}
{{- define "repcache.postfix.mainCf" -}}
{{- $dir := .Values.postfix.tableDir -}}
{{- $used := dict -}}
{{- range $m := .Values.config.maps -}}
{{- $path := include "repcache.postfix.tablePath" (dict "dir" $dir "name" $m.name) -}}
{{- if hasKey $used $m.kind }}
# map {{ $m.name }}: Postfix has one {{ $m.kind }} cache; point another table at {{ $path }} if needed.
{{- else }}
{{- $_ := set $used $m.kind true -}}
{{- if eq $m.kind "postscreen" }}
# postscreen's cache lives in repcache (map {{ $m.name }}); records keep their own lifetimes there.
postscreen_cache_map = memcache:{{ $path }}
# Postfix cannot walk a memcache table to clean it; repcache expires records itself.
postscreen_cache_cleanup_interval = 0
# Match repcache's retention for map {{ $m.name }}, so both sides agree when a record is stale.
postscreen_cache_retention_time = {{ include "repcache.seconds" ($m.retention | default "168h") | include "repcache.postfixDuration" }}
{{- else if eq $m.kind "verify" }}
# verify's cache lives in repcache (map {{ $m.name }}).
address_verify_map = memcache:{{ $path }}
# Postfix cannot walk a memcache table to clean it; repcache expires records itself.
address_verify_cache_cleanup_interval = 0
# Match repcache's positive_expire for map {{ $m.name }}.
address_verify_positive_expire_time = {{ include "repcache.seconds" ($m.positiveExpire | default "744h") | include "repcache.postfixDuration" }}
# Match repcache's negative_expire for map {{ $m.name }}.
address_verify_negative_expire_time = {{ include "repcache.seconds" ($m.negativeExpire | default "72h") | include "repcache.postfixDuration" }}
{{- else }}
# map {{ $m.name }} ({{ $m.kind }}): use memcache:{{ $path }} wherever a table of this kind belongs.
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
repcache.postfix.table: one memcache table file; takes (dict "map" M "endpoint" E).
*/}}
{{- define "repcache.postfix.table" -}}
{{- $m := .map -}}
# repcache's listener{{ .endpoint.note }}.
memcache = {{ .endpoint.addr }}
# repcache recognises map {{ $m.name }} by this prefix; it must match the map's prefix.
key_format = {{ $m.prefix }}%s
{{- if eq ($m.clientTtl | default "ignore") "cap" }}
# client_ttl is cap: this ttl bounds each record's lifetime; over 2592000 memcache would read it as a date.
ttl = 2592000
{{- else if eq $m.kind "passthrough" }}
# Passthrough map: records live this many seconds (at most 2592000: above, memcache reads a date).
ttl = 3600
{{- else }}
# No ttl: repcache gives each {{ $m.kind }} record the lifetime Postfix's own rules give it.
{{- end }}
{{- end }}

{{/*
repcache.postfix.tables: file name -> content, as YAML.
*/}}
{{- define "repcache.postfix.tables" -}}
{{- $endpoint := include "repcache.postfix.endpoint" . | fromYaml -}}
{{- $out := dict -}}
{{- range $m := .Values.config.maps -}}
{{- $_ := set $out (printf "repcache-%s.cf" $m.name) (printf "%s\n" (include "repcache.postfix.table" (dict "map" $m "endpoint" $endpoint))) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{/*
repcache.postfix.config: everything, in the layout `repcache postfix-config` prints.
*/}}
{{- define "repcache.postfix.config" -}}
{{- $endpoint := include "repcache.postfix.endpoint" . | fromYaml -}}
# ---- main.cf: add these lines (generated by repcache postfix-config) ----
{{- include "repcache.postfix.mainCf" . }}
{{- range $m := .Values.config.maps }}

# ---- {{ include "repcache.postfix.tablePath" (dict "dir" $.Values.postfix.tableDir "name" $m.name) }} ----
{{ include "repcache.postfix.table" (dict "map" $m "endpoint" $endpoint) }}
{{- end }}
{{- end }}
