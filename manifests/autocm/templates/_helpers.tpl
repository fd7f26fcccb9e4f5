{{/* Chart name, truncated to 63 characters (the DNS label limit). */}}
{{- define "autocm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, prefixed to the chart name unless it already contains it. */}}
{{- define "autocm.fullname" -}}
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

{{- define "autocm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "autocm.name" . | quote }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end }}

{{- define "autocm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{ include "autocm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
{{- end }}

{{- define "autocm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "autocm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "autocm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "autocm.peeringName" -}}
{{- default (include "autocm.fullname" .) .Values.peering.name }}
{{- end }}

{{/*
Checks the schema cannot express across values; fails the install with a message that says what to change.
*/}}
{{- define "autocm.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.enabled) }}
{{- fail "replicaCount > 1 needs peering.enabled=true: without peering every replica would act on every policy" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (lt (int .Values.peering.prioritySpread) 2) }}
{{- fail "replicaCount > 1 needs peering.prioritySpread >= 2: kopf pauses all peers that share the highest priority" }}
{{- end }}
{{- if le (float64 .Values.operator.shareMaxAgeSeconds) (float64 .Values.operator.shareEverySeconds) }}
{{- fail "operator.shareMaxAgeSeconds must exceed operator.shareEverySeconds: every peer batch would be stale before it is read" }}
{{- end }}
{{- end }}

{{/*
The `autocm run` arguments, one per list item (controller/run_cmd.py defines each flag).
*/}}
{{- define "autocm.args" -}}
- run
- {{ printf "--prometheus=%s" .Values.prometheus.url | quote }}
- {{ printf "--metrics-port=%d" (int .Values.operator.metricsPort) | quote }}
{{- if .Values.operator.watchNamespaces }}
{{- range .Values.operator.watchNamespaces }}
- {{ printf "--namespace=%s" . | quote }}
{{- end }}
{{- else }}
- --all-namespaces
{{- end }}
{{- if .Values.peering.enabled }}
- --peering
- {{ printf "--peering-name=%s" (include "autocm.peeringName" .) | quote }}
- {{ printf "--priority=%d" (int .Values.peering.priority) | quote }}
- {{ printf "--peering-lifetime=%d" (int .Values.peering.lifetimeSeconds) | quote }}
{{- if gt (int .Values.replicaCount) 1 }}
- {{ printf "--priority-spread=%d" (int .Values.peering.prioritySpread) | quote }}
{{- end }}
{{- else }}
- --standalone
{{- end }}
{{- if not (kindIs "invalid" .Values.operator.intervalSeconds) }}
- {{ printf "--interval=%v" .Values.operator.intervalSeconds | quote }}
{{- end }}
- {{ printf "--checkpoint-every=%v" .Values.operator.checkpointEverySeconds | quote }}
{{- if .Values.operator.pause }}
- --pause
{{- end }}
{{- if .Values.operator.crossNamespaceClasses }}
- --cross-namespace-classes
{{- end }}
- {{ printf "--share-every=%v" .Values.operator.shareEverySeconds | quote }}
- {{ printf "--share-max-age=%v" .Values.operator.shareMaxAgeSeconds | quote }}
{{- if eq .Values.operator.logLevel "debug" }}
- --verbose
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
RBAC. Every rule maps to API calls in controller/kube.py, controller/operator.py or kopf itself;
tests/unit/operator/test_helm_chart.py keeps that table and fails when the code and these rules drift.

Cluster-scoped rules: needed whatever namespaces are watched.
*/}}
{{- define "autocm.clusterRules" -}}
# Capacity checks before a GPU scale-up: free GPUs node by node (kube.py WorkloadActuator._room).
- apiGroups: [""]
  resources: [nodes]
  verbs: [list]
# Capacity: unschedulable GPU pods anywhere in the cluster, and GPUs in use per node (_room);
# the workload's own pods (WorkloadActuator.pods) are covered by the same rule.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# kopf: discovers and follows CustomResourceDefinitions (the SizingPolicy CRD's changes).
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- if .Values.operator.watchNamespaces }}
# kopf: follows the namespaces it serves (namespaced mode).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- else if .Values.peering.enabled }}
# kopf peering (cluster-wide mode): read peers, write our own keep-alive.
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}

{{/*
Namespaced rules: cluster-wide in a ClusterRole when every namespace is watched, else a Role per namespace.
*/}}
{{- define "autocm.namespacedRules" -}}
# kopf: watches SizingPolicies; patches them for its finalizer and progress annotations.
- apiGroups: [autocm.io]
  resources: [sizingpolicies]
  verbs: [list, watch, patch]
# Status of every step (operator.py Engine._write, server-side apply).
- apiGroups: [autocm.io]
  resources: [sizingpolicies/status]
  verbs: [patch]
# Events on policies and workloads (kube.py post_event) and kopf's own.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Learner checkpoints: read on start, written by server-side apply, which creates them the first time.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
# Read the workload's configuration (one LIST per namespace and kind per interval, GET after a change);
# change its pod template (GPUs, env knobs) by server-side apply.
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, patch]
# Replicas through the scale subresource.
- apiGroups: [apps]
  resources: [deployments/scale, statefulsets/scale]
  verbs: [patch]
# Jobs: parallelism and template changes; a template change deletes and re-creates the Job.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, patch, delete]
# Kubeflow PyTorchJobs: elastic Worker.replicas in place, otherwise checkpoint-aware re-creation.
- apiGroups: [kubeflow.org]
  resources: [pytorchjobs]
  verbs: [get, list, create, patch, delete]
# After a 404 from pods/resize: is the pod gone, or is in-place resize unsupported (kube.py _resize_in_place)?
- apiGroups: [""]
  resources: [pods]
  verbs: [get]
# In-place CPU/memory (Kubernetes 1.33+).
- apiGroups: [""]
  resources: [pods/resize]
  verbs: [patch]
# Capacity: ResourceQuota room for GPUs and pods.
- apiGroups: [""]
  resources: [resourcequotas]
  verbs: [list]
# Other autoscalers that already size the workload (kube.py _list_autoscalers).
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [list]
- apiGroups: [autoscaling.k8s.io]
  resources: [verticalpodautoscalers]
  verbs: [list]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [list]
{{- if and .Values.peering.enabled .Values.operator.watchNamespaces }}
# kopf peering (namespaced mode): one KopfPeering per served namespace.
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
