{{/* Names, labels and the lists of namespaces that the templates share. */}}

{{- define "colonies-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "colonies-operator.fullname" -}}
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

{{- define "colonies-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "colonies-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "colonies-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "colonies-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "colonies-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "colonies-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "colonies-operator.subjects" -}}
- kind: ServiceAccount
  name: {{ include "colonies-operator.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end }}

{{- define "colonies-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The watched namespaces as a JSON list; empty with watchAllNamespaces. */}}
{{- define "colonies-operator.watchedNamespaces" -}}
{{- if .Values.watchAllNamespaces }}
{{- list | toJson }}
{{- else if .Values.watchNamespaces }}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- else }}
{{- list .Release.Namespace | toJson }}
{{- end }}
{{- end }}

{{/* The namespace of the leader election Lease: the first watched namespace by name (where an instance started by
hand with the same --namespace arguments looks too), or the release namespace when every namespace is served. */}}
{{- define "colonies-operator.leaseNamespace" -}}
{{- $watched := include "colonies-operator.watchedNamespaces" . | fromJsonArray }}
{{- if $watched }}{{ first (sortAlpha $watched) }}{{ else }}{{ .Release.Namespace }}{{ end }}
{{- end }}

{{/* "true" when the operator serves every namespace: its rules for ColoniesExecutors are cluster-wide. */}}
{{- define "colonies-operator.clusterWide" -}}
{{- if .Values.watchAllNamespaces }}true{{ end }}
{{- end }}

{{/* "true" when Jobs may run in any namespace: the Jobs rules are cluster-wide. */}}
{{- define "colonies-operator.jobsClusterWide" -}}
{{- if or .Values.watchAllNamespaces (has "*" .Values.policy.jobNamespaces) }}true{{ end }}
{{- end }}

{{/*
The operator's policy file (JSON, which the operator reads as YAML), every key written out: null means "no
limit" to the operator, while a key left out would mean its built-in default.
*/}}
{{- define "colonies-operator.policy" -}}
{{- $p := .Values.policy }}
{{- $ceiling := dict }}
{{- range $key := list "allowedImages" "cpu" "memory" "ephemeralStorage" "gpus" "nodes" "processesPerNode" "containersPerProcess" "walltimeSeconds" }}
{{- $_ := set $ceiling $key (index $p.ceiling $key) }}
{{- end }}
{{- $defaults := dict }}
{{- range $key := list "cpu" "memory" "ephemeralStorage" "walltimeSeconds" }}
{{- $_ := set $defaults $key (index $p.defaults $key) }}
{{- end }}
{{- $policy := dict "jobNamespaces" ($p.jobNamespaces | default list) "serviceAccountNames" ($p.serviceAccountNames | default list) "allowServiceAccountToken" $p.allowServiceAccountToken "podSecurity" $p.podSecurity "maxConcurrentProcesses" $p.maxConcurrentProcesses "ceiling" $ceiling "defaults" $defaults "clusterDomain" $p.clusterDomain "volumeTypes" ($p.volumeTypes | default list) }}
{{- toPrettyJson $policy }}
{{- end }}

{{/* Values that the schema cannot check. */}}
{{- define "colonies-operator.validate" -}}
{{- if and .Values.watchAllNamespaces .Values.watchNamespaces }}
{{- fail "watchAllNamespaces and watchNamespaces exclude each other: set one of them" }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if not (has .Values.policy.podSecurity.defaultProfile .Values.policy.podSecurity.allowedProfiles) }}
{{- fail (printf "policy.podSecurity.defaultProfile %s must be one of policy.podSecurity.allowedProfiles (%s)" .Values.policy.podSecurity.defaultProfile (join ", " .Values.policy.podSecurity.allowedProfiles)) }}
{{- end }}
{{- if and (has "*" .Values.policy.jobNamespaces) (gt (len .Values.policy.jobNamespaces) 1) }}
{{- fail "policy.jobNamespaces: \"*\" already allows every namespace; list nothing else with it" }}
{{- end }}
{{- $election := .Values.leaderElection }}
{{- if not (lt (float64 $election.renewDeadline) (float64 $election.leaseDuration)) }}
{{- fail "leaderElection.renewDeadline must be shorter than leaderElection.leaseDuration: the leader must stop before anyone may take over" }}
{{- end }}
{{- if not (lt (mulf (float64 $election.retryPeriod) 1.2) (float64 $election.renewDeadline)) }}
{{- fail "leaderElection.retryPeriod (with its 20% jitter) must be shorter than leaderElection.renewDeadline" }}
{{- end }}
{{- end }}

{{/*
What the operator does in a namespace it serves: kopf watches ColoniesExecutors, patches them (finalizer,
annotations) and their status, and posts Events (the uninstall hook deletes the release's own); the operator reads the key and CA Secrets and ConfigMaps
its resources name, creates the Secret that keeps its own executor key, and runs Jobs (below).
*/}}
{{- define "colonies-operator.executorRules" -}}
- apiGroups: [colonyos.io]
  resources: [coloniesexecutors]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [colonyos.io]
  resources: [coloniesexecutors/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
{{- end }}

{{/* Where Jobs run (watched namespaces and policy.jobNamespaces): create, watch, label (closed) and delete them,
read, watch and delete their pods, read the pods' logs. Nothing else: no Secrets, no ColoniesExecutors. */}}
{{- define "colonies-operator.jobRules" -}}
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete, deletecollection]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, deletecollection]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
{{- if .Values.rbac.readWorkloads }}
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [get, list, watch]
{{- end }}
{{- end }}

{{/* Cluster-scoped and read-only: Nodes, whose hardware becomes each executor's Colonies capabilities. */}}
{{- define "colonies-operator.nodeRules" -}}
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
{{- end }}
