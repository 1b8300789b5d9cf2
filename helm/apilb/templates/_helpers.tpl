{{- define "apilb.name" -}}{{ .Chart.Name }}{{- end -}}
{{- define "apilb.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "apilb.labels" -}}
app.kubernetes.io/name: {{ include "apilb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
{{- define "apilb.selector" -}}
app.kubernetes.io/name: {{ include "apilb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "apilb.serviceAccount" -}}
{{- default (include "apilb.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}
{{- define "apilb.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{/* apilb's flags, one per value. */}}
{{- define "apilb.args" -}}
{{- $v := .Values -}}
{{- range $v.listen }}
- --listen={{ . }}
{{- end }}
{{- range $v.upstreams }}
- --upstream={{ . }}
{{- end }}
- --discovery={{ $v.discovery }}
- --discovery-debounce={{ $v.discoveryDebounce }}
- --watch-timeout={{ $v.watchTimeout }}
- --watch-stall={{ $v.watchStall }}
{{- if $v.stateFile.enabled }}
- --state-file={{ $v.stateFile.hostPath }}/state
{{- end }}
- --admin-listen={{ $v.adminListen }}
- --connect-timeout={{ $v.connectTimeout }}
- --health-check={{ $v.healthCheck }}
- --health-interval={{ $v.healthInterval }}
- --health-timeout={{ $v.healthTimeout }}
- --rise={{ $v.rise }}
- --fall={{ $v.fall }}
- --health-auth={{ $v.healthAuth }}
- --close-unhealthy={{ $v.closeUnhealthy }}
- --access-log={{ $v.accessLog }}
- --drain-timeout={{ $v.drainTimeout }}
- --shutdown-timeout={{ $v.shutdownTimeout }}
- --max-connection-age={{ $v.maxConnectionAge }}
- --balance={{ $v.balance }}
- --prefer={{ $v.prefer }}
{{- with $v.zone }}
- --zone={{ . }}
{{- end }}
{{- if gt (int $v.workers) 0 }}
- --workers={{ $v.workers }}
{{- end }}
- --max-connections={{ $v.maxConnections }}
- --log-level={{ $v.logLevel }}
- --log-format={{ $v.logFormat }}
{{- range $v.extraArgs }}
- {{ . }}
{{- end }}
{{- end -}}
{{- define "apilb.adminPort" -}}
{{- regexFind "[0-9]+$" .Values.adminListen -}}
{{- end -}}
{{- define "apilb.adminHost" -}}
{{- regexReplaceAll ":[0-9]+$" .Values.adminListen "" | trimPrefix "[" | trimSuffix "]" -}}
{{- end -}}
{{/* The probes' host: the admin address, or none (the pod's IP, which is the
node's with hostNetwork) when apilb listens on the node's address or on all. */}}
{{- define "apilb.probeHost" -}}
{{- $h := include "apilb.adminHost" . -}}
{{- if not (has $h (list "$(HOST_IP)" "0.0.0.0" "::")) -}}
host: {{ $h }}
{{- end -}}
{{- end -}}
{{/* Prometheus scrapes the admin endpoint from another pod: it must listen on
the node's address (or all of them), never on loopback only. */}}
{{- define "apilb.scrapable" -}}
{{- $m := .Values.metrics -}}
{{- if or $m.serviceMonitor.enabled $m.podMonitor.enabled -}}
{{- if eq .Values.adminListen "off" -}}
{{- fail "metrics.serviceMonitor/podMonitor need the admin endpoint: adminListen is off" -}}
{{- end -}}
{{- if not (has (include "apilb.adminHost" .) (list "$(HOST_IP)" "0.0.0.0" "::")) -}}
{{- fail (printf "metrics.serviceMonitor/podMonitor: Prometheus cannot reach adminListen=%s from its pod; set adminListen to \"$(HOST_IP):%s\" (the node's address) or \"0.0.0.0:%s\"" .Values.adminListen (include "apilb.adminPort" .) (include "apilb.adminPort" .)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{/* The apilb container, shared by the DaemonSet and the static pod. */}}
{{- define "apilb.container" -}}
name: apilb
image: {{ include "apilb.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
args:
{{- include "apilb.args" . | nindent 2 }}
{{- with .extraArgs }}
{{- toYaml . | nindent 2 }}
{{- end }}
{{- $hostIP := hasPrefix "$(HOST_IP):" .Values.adminListen }}
{{- $zoneEnv := and (not .Values.zone) .Values.zoneFromNodeLabel (not .staticPod) }}
{{- if $hostIP }}
{{- if .Values.staticPod.enabled }}
{{- fail "adminListen=$(HOST_IP):PORT needs the downward API, which a static pod cannot rely on without an apiserver; give the node's address or 0.0.0.0 instead" }}
{{- end }}
{{- end }}
{{- $nodeEnv := and (eq .Values.prefer "zone") (not .Values.zone) (not .staticPod) }}
{{- if or $hostIP $zoneEnv $nodeEnv }}
env:
{{- if $hostIP }}
  - name: HOST_IP
    valueFrom:
      fieldRef:
        fieldPath: status.hostIP
{{- end }}
{{- if $zoneEnv }}
  # --zone: empty (no preference by zone) where the pod carries no zone label.
  - name: APILB_ZONE
    valueFrom:
      fieldRef:
        fieldPath: metadata.labels['topology.kubernetes.io/zone']
{{- end }}
{{- if $nodeEnv }}
  # --node-name: without APILB_ZONE, the zone label of this node's object (get nodes).
  - name: NODE_NAME
    valueFrom:
      fieldRef:
        fieldPath: spec.nodeName
{{- end }}
{{- end }}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.runAsUser }}
  runAsGroup: {{ .Values.runAsUser }}
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
    add: ["NET_BIND_SERVICE"]
  seccompProfile:
    type: RuntimeDefault
{{- if ne .Values.adminListen "off" }}
livenessProbe:
  httpGet:
    {{- with include "apilb.probeHost" . }}
    {{ . }}
    {{- end }}
    path: /healthz
    port: {{ include "apilb.adminPort" . }}
  periodSeconds: 10
  timeoutSeconds: 1 # it_admin_admin_slowloris holds the admin port and asks within this
  failureThreshold: 6
readinessProbe:
  httpGet:
    {{- with include "apilb.probeHost" . }}
    {{ . }}
    {{- end }}
    path: /readyz
    port: {{ include "apilb.adminPort" . }}
  periodSeconds: 5
  timeoutSeconds: 1
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
{{- end -}}
{{/* An init container that hands the state directory to the apilb user: a
hostPath that kubelet creates belongs to root, and apilb (non-root) writes
its state file there. Root with CHOWN and FOWNER only, no privilege escalation. */}}
{{- define "apilb.stateInit" -}}
name: state-dir
image: {{ include "apilb.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
command: ["/usr/bin/apilb-sync"]
args:
  - --once
  - --owner={{ .Values.runAsUser }}
  - --dir={{ .Values.stateFile.hostPath }}
securityContext:
  runAsUser: 0
  runAsNonRoot: false
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
    add: ["CHOWN", "FOWNER"]
  seccompProfile:
    type: RuntimeDefault
resources:
  requests:
    cpu: 1m
    memory: 4Mi
  limits:
    memory: 16Mi
volumeMounts:
  - name: state
    mountPath: {{ .Values.stateFile.hostPath }}
{{- end -}}
