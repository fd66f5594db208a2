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

{{/* Pod security context of a development service: UID 1000, restricted Pod Security. */}}
{{- define "ecom.devPodSecurity" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container security context of a development service. */}}
{{- define "ecom.devContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/*
Environment every development JVM gets. JDK_JAVA_OPTIONS is read by the `java` launcher of
Java 9 and later (a Java 8 image ignores it): the module openings Hadoop and HBase need on 17.
*/}}
{{- define "ecom.devJvmEnv" -}}
- name: JDK_JAVA_OPTIONS
  value: >-
    -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
    --add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.lang=ALL-UNNAMED
    --add-opens=java.base/java.lang.reflect=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED
    --add-opens=java.base/java.nio=ALL-UNNAMED --add-opens=java.base/java.util=ALL-UNNAMED
    --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
    --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
    --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
    --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports=java.base/sun.net.dns=ALL-UNNAMED --add-exports=java.base/sun.net.util=ALL-UNNAMED
- name: HADOOP_USER_NAME
  value: ecom
{{- end -}}

{{/* JVM flags of every development service (after the heap). */}}
{{- define "ecom.devJvmFlags" -}}
- -XX:+UseSerialGC
- -Xss512k
- -Djava.net.preferIPv4Stack=true
- -Djava.awt.headless=true
{{- end -}}

{{/*
The data volume of a development service; argument: (list $ serviceValues). A PersistentVolumeClaim
<name>-data when persistence.enabled, else an emptyDir.
*/}}
{{- define "ecom.devDataVolume" -}}
{{- $s := index . 1 -}}
- name: data
{{- if $s.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ $s.name }}-data
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{/* The PersistentVolumeClaim of a development service, when enabled; argument: (list $ serviceValues component). */}}
{{- define "ecom.devDataClaim" -}}
{{- $ := index . 0 -}}
{{- $s := index . 1 -}}
{{- if $s.persistence.enabled }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ $s.name }}-data
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "ecom.labels" $ | nindent 4 }}
    app.kubernetes.io/component: {{ index . 2 }}
spec:
  accessModes: ["ReadWriteOnce"]
  {{- with $s.persistence.storageClassName }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ $s.persistence.size }}
{{- end }}
{{- end -}}

{{/*
An exec readiness probe that GETs PATH from 127.0.0.1:PORT over bash's /dev/tcp and passes when
the answer contains TEXT (a fixed string); argument: (list PORT PATH TEXT).
*/}}
{{- define "ecom.devHttpProbe" -}}
{{- $script := printf "exec 3<>/dev/tcp/127.0.0.1/%v && printf 'GET %s HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && grep -qF '%s' <&3" (index . 0) (index . 1) (index . 2) -}}
exec:
  command: ["bash", "-c", {{ $script | quote }}]
{{- end -}}

{{/* Egress rule of every NetworkPolicy: DNS queries to networkPolicy.dns.to only. */}}
{{- define "ecom.dnsEgress" -}}
{{- $dns := .Values.networkPolicy.dns -}}
# DNS: these ports of these peers only.
- ports:
    {{- range $dns.ports }}
    - port: {{ . }}
      protocol: UDP
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  to:
    {{- toYaml (required "networkPolicy.dns.to: list the DNS servers' peers (an egress rule without them would admit every address)" $dns.to) | nindent 4 }}
{{- end -}}

{{/*
Egress rules to the pipelines' data services: one per networkPolicy.services entry (its TCP
ports, to its cidrs and peers), and with devInfra.enabled one per development service (its
pods by podSelector in the release namespace). Each rule has a non-empty `to`.
*/}}
{{- define "ecom.serviceEgress" -}}
{{- range .Values.networkPolicy.services }}
{{- if not (or .cidrs .peers) }}
{{- fail (printf "networkPolicy.services %s: list cidrs or peers (an egress rule without them would admit every address)" .name) }}
{{- end }}
# {{ .name }}: these ports of these peers only.
- ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- with .peers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- if .Values.devInfra.enabled }}
{{- range list (list "kafka" 9092) (list "hdfs-namenode" 8020) (list "hdfs-datanode" 9866) (list "hbase" 9090) }}
# The development {{ index . 0 }} pods of the release.
- ports:
    - port: {{ index . 1 }}
      protocol: TCP
  to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ $.Release.Namespace }}
      podSelector:
        matchLabels:
          {{- include "ecom.devSelector" (list $ (index . 0)) | nindent 10 }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Patterns of the images EcomPipelines may name (ECOM_ALLOWED_IMAGES), comma-separated:
operator.allowedImages, or any tag or digest of image.repository when that list is empty.
*/}}
{{- define "ecom.allowedImages" -}}
{{- $repo := .Values.image.repository -}}
{{- join "," (default (list (printf "%s:*" $repo) (printf "%s@*" $repo)) .Values.operator.allowedImages) -}}
{{- end -}}
