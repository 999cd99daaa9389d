{{/* The chart's name (app.kubernetes.io/name): what `kubectl get pods -l` selects on. */}}
{{- define "shipper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: the release name, with the chart's name unless the release already holds it. */}}
{{- define "shipper.fullname" -}}
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

{{- define "shipper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shipper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "shipper.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "shipper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "shipper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "shipper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The agent's configuration file (docs/src/reference/configuration.md), with extraConfig merged over it. */}}
{{- define "shipper.config" -}}
{{- $loki := .Values.loki }}
{{- $client := dict "url" $loki.url }}
{{- with $loki.tenantId }}{{ $_ := set $client "tenant_id" . }}{{ end }}
{{- with $loki.externalLabels }}{{ $_ := set $client "external_labels" . }}{{ end }}
{{- if and $loki.basicAuth.username $loki.basicAuth.secretName }}
{{- $_ := set $client "basic_auth" (dict "username" $loki.basicAuth.username "password_file" "/etc/shipper/secrets/basic-auth/password") }}
{{- else if or $loki.basicAuth.username $loki.basicAuth.secretName }}
{{- fail "loki.basicAuth needs both username and secretName (the Secret holding the password under passwordKey)" }}
{{- end }}
{{- if $loki.bearerToken.secretName }}
{{- $_ := set $client "bearer_token_file" "/etc/shipper/secrets/bearer-token/token" }}
{{- end }}
{{- if $loki.tls.secretName }}
{{- $tls := dict "ca_file" "/etc/shipper/secrets/tls/ca.crt" }}
{{- with $loki.tls.serverName }}{{ $_ := set $tls "server_name" . }}{{ end }}
{{- $_ := set $client "tls" $tls }}
{{- end }}
{{- $k := .Values.kubernetes }}
{{- $kube := dict "pods_root" "/var/log/pods" "docker_root" "/var/lib/docker/containers" "api" true "pod_labels" $k.podLabels "pod_annotations" $k.podAnnotations "include_namespaces" $k.includeNamespaces "exclude_namespaces" $k.excludeNamespaces "watch_namespaces" $k.watchNamespaces "structured_metadata" $k.structuredMetadata }}
{{- $server := dict "http_listen" (printf "0.0.0.0:%v" .Values.http.port) "log_level" .Values.logLevel "log_format" .Values.logFormat }}
{{- $tail := dict "watch" (ternary "auto" "inotify" .Values.ebpf.enabled) }}
{{- $positions := dict "filename" "/var/lib/shipper/positions.json" }}
{{- with .Values.migration.importPositionsFrom }}
{{- $agent := index (splitList ":" .) 0 }}
{{- $_ := set $positions "import_from" (printf "%s:/var/lib/shipper-import/%s" $agent (base (trimPrefix (printf "%s:" $agent) .))) }}
{{- end }}
{{- $config := dict "server" $server "positions" $positions "client" $client "discovery" "kubernetes" "kubernetes" $kube "tail" $tail "shutdown_timeout" "30s" }}
{{- toYaml (mergeOverwrite $config (deepCopy .Values.extraConfig)) }}
{{- end }}
