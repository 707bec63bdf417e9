{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "rallypoint.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, plus the chart name unless it contains it. */}}
{{- define "rallypoint.fullname" -}}
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

{{- define "rallypoint.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rallypoint.labels" -}}
helm.sh/chart: {{ include "rallypoint.chart" . }}
{{ include "rallypoint.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rallypoint
{{- end }}

{{- define "rallypoint.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rallypoint.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rallypoint.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rallypoint.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rallypoint.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Where the state volume and the config file live in the container. */}}
{{- define "rallypoint.stateDir" -}}/var/lib/rallypoint{{- end }}
{{- define "rallypoint.configPath" -}}/etc/rallypoint/rallypoint.toml{{- end }}

{{/*
The configuration as TOML: .Values.config with the keys the chart owns (state.dir, http.listen,
and query_api when .Values.queryApi.enabled) laid over it. Top-level values first, then one [section] per map. Strings, numbers, booleans
and lists of them are written as JSON, which is valid TOML for these types.
*/}}
{{- define "rallypoint.toml" -}}
{{- $owned := dict "state" (dict "dir" (include "rallypoint.stateDir" .)) "http" (dict "listen" (printf "0.0.0.0:%v" .Values.http.port)) }}
{{- with .Values.queryApi }}
{{- if .enabled }}
{{- $api := dict "enabled" true "listen" (printf "0.0.0.0:%v" .port) }}
{{- if .tls.existingSecret }}
{{- $_ := set $api "tls_cert" (printf "%s/%s" .tls.mountPath .tls.certKey) }}
{{- $_ := set $api "tls_key" (printf "%s/%s" .tls.mountPath .tls.keyKey) }}
{{- end }}
{{- $_ := set $owned "query_api" $api }}
{{- end }}
{{- end }}
{{- $cfg := mergeOverwrite (deepCopy (.Values.config | default dict)) $owned -}}
# Rendered by the Helm chart from .Values.config; see config/defaults.toml for every key.
{{- range $key := keys $cfg | sortAlpha }}
{{- $value := get $cfg $key }}
{{- if not (kindIs "map" $value) }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- range $section := keys $cfg | sortAlpha }}
{{- $table := get $cfg $section }}
{{- if kindIs "map" $table }}

[{{ $section }}]
{{- range $key := keys $table | sortAlpha }}
{{- $value := get $table $key }}
{{- if kindIs "map" $value }}
{{- fail (printf "config.%s.%s: nested tables are not Rallypoint settings" $section $key) }}
{{- end }}
{{ $key }} = {{ $value | toJson }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Fails the render on a query API that Rallypoint would refuse, so that the mistake shows at
`helm install`, not in a crash-looping pod.
*/}}
{{- define "rallypoint.checkQueryApi" -}}
{{- with .Values.queryApi }}
{{- if .enabled }}
{{- if not .tokens.existingSecret }}
{{- fail "queryApi.enabled needs queryApi.tokens.existingSecret: a Secret with a token per audience" }}
{{- end }}
{{- if not .tokens.audiences }}
{{- fail "queryApi.tokens.audiences: list the audiences (cell, or a nation) whose token the Secret holds" }}
{{- end }}
{{- $protocol := (($.Values.config | default dict).kafka | default dict).security_protocol | default "plaintext" }}
{{- if and (has $protocol (list "ssl" "sasl_ssl")) (not .tls.existingSecret) }}
{{- fail (printf "Kafka uses TLS (config.kafka.security_protocol %s): set queryApi.tls.existingSecret, so that the query API's tokens do not cross the network in clear" $protocol) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
