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
