{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "kelvin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; the release name alone when it already contains the chart's. */}}
{{- define "kelvin.fullname" -}}
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

{{- define "kelvin.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "kelvin.labels" -}}
helm.sh/chart: {{ include "kelvin.chart" . }}
{{ include "kelvin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kelvin
{{- end }}

{{- define "kelvin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kelvin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one service's objects: (list $ "rules"). */}}
{{- define "kelvin.componentLabels" -}}
{{ include "kelvin.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "kelvin.componentSelectorLabels" -}}
{{ include "kelvin.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* Name of one service's objects: (list $ "rules"). */}}
{{- define "kelvin.componentName" -}}
{{- printf "%s-%s" (include "kelvin.fullname" (index . 0)) (index . 1) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kelvin.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "kelvin.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kelvin.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the URLs and keys: the user's, or the chart's. */}}
{{- define "kelvin.secretName" -}}
{{- default (printf "%s-secrets" (include "kelvin.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{/*
One service's settings as YAML: `defaults` overlaid with `services.<name>`. The maps env,
podAnnotations, podLabels, autoscaling, pdb and probes are merged one level deep (the service's
keys win); every other setting of the service replaces the default whole. Usage:
  {{- $svc := include "kelvin.serviceValues" (list $ "rules") | fromYaml }}
*/}}
{{- define "kelvin.serviceValues" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $defaults := $root.Values.defaults }}
{{- $own := index $root.Values.services $name }}
{{- $merged := list "env" "podAnnotations" "podLabels" "autoscaling" "pdb" "probes" }}
{{- $out := dict }}
{{- range $key, $value := $defaults }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- range $key, $value := $own }}
{{- if and (has $key $merged) (kindIs "map" $value) (kindIs "map" (index $defaults $key)) }}
{{- $map := dict }}
{{- range $k, $v := index $defaults $key }}
{{- $_ := set $map $k $v }}
{{- end }}
{{- range $k, $v := $value }}
{{- $_ := set $map $k $v }}
{{- end }}
{{- $_ := set $out $key $map }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
The non-secret configuration (KELVIN_* and OTEL_* variables) as a YAML map: the ConfigMap's
data, and the migration job's inline env (the job runs before the ConfigMap exists).
*/}}
{{- define "kelvin.configData" -}}
{{- $c := .Values.config -}}
KELVIN_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.grpcPort) | quote }}
KELVIN_DATA_DIR: "/tmp/kelvin-data"
KELVIN_MIGRATE_ON_START: "false"
KELVIN_TELEMETRY__LOG_FORMAT: {{ $c.logFormat | quote }}
KELVIN_TELEMETRY__LOG_FILTER: {{ $c.logFilter | quote }}
{{- if .Values.metrics.enabled }}
KELVIN_TELEMETRY__METRICS_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
{{- end }}
KELVIN_SERVER__SHUTDOWN_GRACE_SECONDS: {{ $c.shutdownGraceSeconds | int | toString | quote }}
KELVIN_SERVER__MAX_REQUEST_BYTES: {{ $c.maxRequestBytes | int64 | toString | quote }}
KELVIN_SERVER__MAX_CONCURRENT_CALLS: {{ $c.maxConcurrentCalls | int | toString | quote }}
KELVIN_SERVER__MAX_CONCURRENT_CALLS_PER_KEY: {{ $c.maxConcurrentCallsPerKey | int | toString | quote }}
KELVIN_CACHE__KEY_PREFIX: {{ $c.cacheKeyPrefix | quote }}
KELVIN_AUTH__ISSUER: {{ $c.auth.issuer | quote }}
KELVIN_AUTH__AUDIENCE: {{ $c.auth.audience | quote }}
KELVIN_AUTH__SIGNING_ALGORITHM: {{ $c.auth.signingAlgorithm | quote }}
{{- with $c.auth.external }}
{{- if .issuer }}
KELVIN_AUTH__EXTERNAL__ISSUER: {{ .issuer | quote }}
KELVIN_AUTH__EXTERNAL__JWKS_URL: {{ required "config.auth.external.jwksUrl is required with config.auth.external.issuer" .jwksUrl | quote }}
KELVIN_AUTH__EXTERNAL__JWKS_REFRESH_SECONDS: {{ .jwksRefreshSeconds | default 300 | int | toString | quote }}
KELVIN_AUTH__EXTERNAL__JWKS_UNKNOWN_KID_REFRESH_SECONDS: {{ .jwksUnknownKidRefreshSeconds | default 30 | int | toString | quote }}
{{- if .audience }}
KELVIN_AUTH__EXTERNAL__AUDIENCE: {{ .audience | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- if .Values.tls.enabled }}
KELVIN_SERVER__TLS__CERT_FILE: "/etc/kelvin/tls/tls.crt"
KELVIN_SERVER__TLS__KEY_FILE: "/etc/kelvin/tls/tls.key"
{{- if .Values.tls.clientAuth }}
KELVIN_SERVER__TLS__CLIENT_CA_FILE: "/etc/kelvin/tls/ca.crt"
{{- end }}
KELVIN_SERVER__HEALTH_LISTEN: {{ printf "0.0.0.0:%d" (int .Values.tls.healthPort) | quote }}
{{- end }}
{{- with .Values.otel.endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- with .Values.otel.resourceAttributes }}
OTEL_RESOURCE_ATTRIBUTES: {{ . | quote }}
{{- end }}
{{- range $name, $value := $c.extraEnv }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* The env entries read from the Secret. */}}
{{- define "kelvin.secretEnv" -}}
{{- $secret := include "kelvin.secretName" . }}
{{- $keys := .Values.secrets.keys -}}
- name: KELVIN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.databaseUrl }}
{{- if .Values.redis.enabled }}
- name: KELVIN_CACHE__REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.redisUrl }}
{{- end }}
{{- if eq .Values.config.auth.signingAlgorithm "HS256" }}
- name: KELVIN_AUTH__HS256_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.hs256Secret }}
{{- else }}
- name: KELVIN_AUTH__SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.signingKey }}
{{- end }}
{{- /* Optional: without it the audit HMAC key is derived from the signing key. */}}
- name: KELVIN_AUTH__AUDIT_HMAC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $keys.auditHmacKey }}
      optional: true
{{- end }}

{{/* Volumes every Kelvin container needs with a read-only root filesystem. */}}
{{- define "kelvin.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{- define "kelvin.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* The port the probes query: the gRPC port, or the plaintext health port with TLS on. */}}
{{- define "kelvin.probePort" -}}
{{- if .Values.tls.enabled }}{{ .Values.tls.healthPort }}{{ else }}{{ .Values.grpcPort }}{{ end }}
{{- end }}
