{{- define "kuberhealthy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kuberhealthy.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kuberhealthy.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kuberhealthy.serviceAccountName" -}}
{{- default (include "kuberhealthy.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "kuberhealthy.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.registry -}}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- /* The Service's URL, with its port unless it is 80. */ -}}
{{- define "kuberhealthy.reportingURL" -}}
{{- $port := int .Values.service.port -}}
{{- $host := printf "%s.%s.svc.cluster.local" (include "kuberhealthy.fullname" .) .Release.Namespace -}}
{{- if ne $port 80 }}{{ $host = printf "%s:%d" $host $port }}{{ end -}}
{{- default (printf "http://%s/externalCheckStatus" $host) .Values.reportingURL -}}
{{- end -}}
