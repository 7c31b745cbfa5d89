{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "healthprobe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name for every object. */}}
{{- define "healthprobe.fullname" -}}
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

{{- define "healthprobe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "healthprobe.labels" -}}
helm.sh/chart: {{ include "healthprobe.chart" . }}
{{ include "healthprobe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: healthprobe
{{- end -}}

{{/* Labels that select the agent's pods (never change them on upgrade). */}}
{{- define "healthprobe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "healthprobe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "healthprobe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "healthprobe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "healthprobe.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* The agent configuration file (healthprobe.yaml). */}}
{{- define "healthprobe.config" -}}
listen: 0.0.0.0:{{ int64 .Values.service.port }}
packs:
{{- if .Values.config.packs }}
{{- toYaml .Values.config.packs | nindent 2 }}
{{- else }} {}
{{- end }}
{{- if .Values.checks }}
checks_dirs:
  - /etc/healthprobe/checks
{{- end }}
concurrency: {{ int64 .Values.config.concurrency }}
{{- end -}}

{{/*
Where the webConfig Secret(s) are mounted, and the web-config file in it.
The directory is mounted whole (no subPath) so that kubelet's updates of the
Secret reach the agent, which reads the file again when it changes.
*/}}
{{- define "healthprobe.webConfigDir" -}}/etc/healthprobe/web{{- end -}}

{{/*
Refuse webConfig combinations that would deploy an agent nobody can reach.
values.schema.json refuses them too; these messages also hold with
--skip-schema-validation and say what to do.
*/}}
{{- define "healthprobe.validateWebConfig" -}}
{{- $web := .Values.webConfig -}}
{{- $sm := .Values.serviceMonitor -}}
{{- if $web.enabled -}}
{{- if not $web.secretName -}}
{{- fail "webConfig.enabled is true but webConfig.secretName is empty: create a Secret holding the web-config file (key webConfig.file) and the certificate and key it names, and set webConfig.secretName to its name (see \"TLS and basic auth\" in the chart's README)" -}}
{{- end -}}
{{- if and $web.requireClientCert (not $web.tls) -}}
{{- fail "webConfig.requireClientCert is true but webConfig.tls is false: client certificates need TLS (tls_server_config in the web-config file)" -}}
{{- end -}}
{{- if and $sm.enabled $web.basicAuth (not (dig "basicAuth" "secretName" "" $sm)) -}}
{{- fail "webConfig.basicAuth is true but serviceMonitor.basicAuth.secretName is empty: Prometheus would get 401 on every scrape; name a Secret with the user name and password (keys serviceMonitor.basicAuth.usernameKey and passwordKey)" -}}
{{- end -}}
{{- if and $sm.enabled $web.requireClientCert (not (and (dig "tlsConfig" "cert" nil $sm) (dig "tlsConfig" "keySecret" nil $sm))) -}}
{{- fail "webConfig.requireClientCert is true but serviceMonitor.tlsConfig.cert or keySecret is empty: Prometheus needs a client certificate and its key to scrape the agent" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A liveness or readiness probe from its value, adapted to the web config:
- TLS: scheme HTTPS (kubelet does not verify the certificate, so a
  self-signed or private-CA one works);
- TLS with RequireAndVerifyClientCert: kubelet cannot present a client
  certificate, the handshake would fail, so a tcpSocket probe on the same port
  (the listener accepts: the agent is up; /-/ready's meaning is lost);
- basic auth alone: unchanged, because the agent exempts /-/healthy and
  /-/ready from basic auth (src/web_config.rs, is_public). tcpSocket would make
  the pod ready before its checks are scheduled, and an Authorization header
  in the pod spec would put a password in a manifest.
Called with (dict "probe" .Values.livenessProbe "web" .Values.webConfig).
*/}}
{{- define "healthprobe.probe" -}}
{{- $p := deepCopy .probe -}}
{{- $web := .web -}}
{{- if and $web.enabled $web.tls -}}
{{- if $web.requireClientCert -}}
{{- $port := $p.httpGet.port -}}
{{- $_ := unset $p "httpGet" -}}
{{- $_ := set $p "tcpSocket" (dict "port" $port) -}}
{{- else -}}
{{- $_ := set $p.httpGet "scheme" "HTTPS" -}}
{{- end -}}
{{- end -}}
{{- toYaml $p -}}
{{- end -}}
