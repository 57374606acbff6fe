{{/*
The endpoint fields shared by the ServiceMonitor and the PodMonitor; takes
(dict "ctx" $ "m" .Values.metrics.serviceMonitor "port" NAME).
*/}}
{{- define "repcache.scrapeEndpoint" -}}
{{- $m := .m -}}
- port: {{ .port }}
  path: /metrics
  {{- with $m.interval }}
  interval: {{ . }}
  {{- end }}
  {{- with $m.scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
  honorLabels: {{ $m.honorLabels }}
  {{- if or .ctx.Values.metrics.job $m.relabelings }}
  relabelings:
    {{- with .ctx.Values.metrics.job }}
    # The bundled alert rules select job="{{ . }}".
    - action: replace
      targetLabel: job
      replacement: {{ . }}
    {{- end }}
    {{- with $m.relabelings }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  {{- with $m.metricRelabelings }}
  metricRelabelings:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
