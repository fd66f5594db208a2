{{/* Name of the chart, overridable. */}}
{{- define "ecom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Base name of every object: the release name, suffixed with the chart name unless it contains it. */}}
{{- define "ecom.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ecom.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ecom.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's objects (Deployment, metrics Service, Roles). */}}
{{- define "ecom.operatorName" -}}
{{- printf "%s-operator" (include "ecom.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The operator's ServiceAccount. */}}
{{- define "ecom.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ecom.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image of the operator (and, through the examples, of every stage Job and the dashboard). */}}
{{- define "ecom.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "ecom.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ecom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ecom-pipeline
{{- end -}}

{{/* Selector labels of the operator pods. */}}
{{- define "ecom.operatorSelector" -}}
app.kubernetes.io/name: {{ include "ecom.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Selector labels of a development service; argument: (list $ "kafka"). */}}
{{- define "ecom.devSelector" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "ecom.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Namespaces holding EcomPipelines: the watched one, or the release's when the operator watches all. */}}
{{- define "ecom.pipelineNamespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace -}}
{{- end -}}

{{/* The restricted Pod Security container context. */}}
{{- define "ecom.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
