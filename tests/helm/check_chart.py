"""Checks of the Helm chart `helm/kelvin`, run by `cargo xtask chart` (and `cargo xtask test`).

Offline, with two packages of `tests/python/requirements.txt`: helm-python-sdk (the Helm v4
library: lint and render, no helm binary, no cluster) and kubernetes-validate (the Kubernetes
JSON schemas, shipped in the package).

For the chart's own defaults and for every `ci/*-values.yaml`:

1. `helm lint --strict` (kube version 1.31);
2. render it as an install of release `kelvin` in namespace `kelvin`;
3. validate every rendered object against the Kubernetes 1.31 schemas, strict (unknown fields
   are errors); the only kind without a schema there, the Prometheus Operator's
   ServiceMonitor, gets a structural check here instead;
4. check our own rules (see `check_rules`): hardened securityContext on every pod and
   container, native gRPC probes (on the plaintext health port with TLS on), TLS files mounted
   and configured, the migration job and the chart-created Secret as hooks in
   the right order, selectors that match, Secret references that resolve, HPAs and PDBs that
   point at real Deployments.

Then a few values that must be refused (schema typos, missing secrets) are refused.

Prints one line per values file; exits 1 with every problem listed if anything fails.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate.utils as kv
import yaml

KUBE_VERSION = "1.31"
RELEASE = "kelvin"
NAMESPACE = "kelvin"
SERVICES = {"rules": "kelvin-rules", "ingest": "kelvin-ingest", "scoring": "kelvin-scoring"}
HARDENED_UID = 65532
HOOK_ORDER = ("pre-install", "pre-upgrade")
TLS_DIR = "/etc/kelvin/tls"

# Kinds outside the core Kubernetes schemas, with the check that stands in for them.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

# Counts of kinds that given permutations must render (a wrong `if` would go unnoticed
# otherwise: an object that is not rendered cannot fail validation).
EXPECTED_KINDS: dict[str, dict[str, int]] = {
    "default": {
        "Deployment": 3,
        "Service": 3,
        "HorizontalPodAutoscaler": 2,
        "PodDisruptionBudget": 3,
        "Job": 1,
        "Secret": 1,
        "ServiceMonitor": 0,
        "Pod": 1,
    },
    "existing-secrets": {"Deployment": 3, "Secret": 0, "ServiceAccount": 0, "Job": 1},
    "minimal": {
        "Deployment": 3,
        "HorizontalPodAutoscaler": 0,
        "PodDisruptionBudget": 0,
        "Secret": 0,
        "Job": 1,
    },
    "full": {
        "Deployment": 3,
        "HorizontalPodAutoscaler": 2,
        "PodDisruptionBudget": 3,
        "ServiceMonitor": 1,
        "Secret": 1,
        "Job": 1,
    },
}

# Values the chart must refuse, with a fragment of the expected error.
MUST_FAIL: list[tuple[str, dict[str, Any], str]] = [
    ("a misspelled setting", {"defaults": {"replica": 2}}, "replica"),
    ("an unknown log format", {"config": {"logFormat": "xml"}}, "logFormat"),
    ("no database URL nor existing secret", {}, "secrets.databaseUrl"),
    (
        "HS256 without its secret",
        {
            "config": {"auth": {"signingAlgorithm": "HS256"}},
            "secrets": {"databaseUrl": "postgres://x@db/kelvin", "redisUrl": "redis://r:6379"},
        },
        "secrets.hs256Secret",
    ),
    (
        "a short HS256 secret",
        {"secrets": {"existingSecret": "s", "hs256Secret": "too-short"}},
        "hs256Secret",
    ),
    (
        "a short audit HMAC key",
        {"secrets": {"existingSecret": "s", "auditHmacKey": "too-short"}},
        "auditHmacKey",
    ),
    (
        "a JWKS refresh interval of zero",
        {
            "secrets": {"existingSecret": "s"},
            "config": {"auth": {"external": {"jwksRefreshSeconds": 0}}},
        },
        "jwksRefreshSeconds",
    ),
    (
        "TLS without its Secret",
        {"secrets": {"existingSecret": "s"}, "tls": {"enabled": True}},
        "tls.secretName",
    ),
    (
        "a ServiceMonitor without metrics",
        {
            "secrets": {"existingSecret": "s"},
            "metrics": {"enabled": False},
            "serviceMonitor": {"enabled": True},
        },
        "metrics.enabled",
    ),
]


class Problems:
    """Problems found for one rendering, each prefixed with the object it is about."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")

    def check(self, ok: bool, where: str, message: str) -> None:
        if not ok:
            self.add(where, message)


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{obj.get('metadata', {}).get('name', '?')}"


def annotations(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def hook_events(obj: dict[str, Any]) -> set[str]:
    return {h.strip() for h in annotations(obj).get("helm.sh/hook", "").split(",") if h.strip()}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind == "Pod":
        return obj.get("spec")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj.get("spec", {}).get("template", {}).get("spec")
    if kind == "CronJob":
        return (
            obj.get("spec", {})
            .get("jobTemplate", {})
            .get("spec", {})
            .get("template", {})
            .get("spec")
        )
    return None


def pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    return obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels") or {}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- rendering and schema validation -------------------------------------------------------


def render(chart: helm.Chart, values: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The rendered objects (with their template path under `__source`) and NOTES.txt."""
    files = chart.render(values, name=RELEASE, namespace=NAMESPACE, revision=1, is_install=True)
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__source"] = path
                objects.append(doc)
    return objects, notes


@functools.cache
def _schema_contents(filename: str, version: str) -> Any:
    return _original_schema_contents(filename, version)


# Each validation otherwise re-reads the schema files (the definitions are megabytes).
_original_schema_contents: Callable[[str, str], Any] = kv.schema_contents
kv.schema_contents = _schema_contents


def validate_schema(obj: dict[str, Any], problems: Problems) -> bool:
    """Strict validation against the Kubernetes schemas; False when none exists for the kind."""
    body = {k: v for k, v in obj.items() if k != "__source"}
    try:
        kv.validate(body, KUBE_VERSION, strict=True)
    except kv.ValidationError as e:
        path = ".".join(str(p) for p in e.path) or "(root)"
        problems.add(
            f"{name_of(obj)} ({obj['__source']})",
            f"invalid for Kubernetes {KUBE_VERSION}: {path}: {e.message}",
        )
    except kv.SchemaNotFoundError:
        if (obj.get("apiVersion"), obj.get("kind")) not in CRD_KINDS:
            problems.add(
                name_of(obj), f"no Kubernetes {KUBE_VERSION} schema for {obj.get('apiVersion')}"
            )
        return False
    return True


def check_service_monitor(obj: dict[str, Any], services: list[dict[str, Any]], p: Problems) -> None:
    where = name_of(obj)
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    endpoints = spec.get("endpoints") or []
    p.check(bool(endpoints), where, "has no endpoints")
    for ep in endpoints:
        port = ep.get("port")
        p.check(str(ep.get("path", "")).startswith("/"), where, f"endpoint path {ep.get('path')!r}")
        matched = [s for s in services if selects(selector, s["metadata"].get("labels") or {})]
        p.check(bool(matched), where, "its selector matches no Service")
        for svc in matched:
            names = {pt.get("name") for pt in svc["spec"].get("ports", [])}
            p.check(port in names, where, f"{name_of(svc)} has no port named {port!r}")


# --- our own rules -------------------------------------------------------------------------


def check_metrics(
    objects: list[dict[str, Any]],
    deployments: list[dict[str, Any]],
    values: dict[str, Any],
    p: Problems,
) -> None:
    """With `metrics.enabled`, every pod serves /metrics on `metrics.port`: the ConfigMap tells
    the binaries to listen there and each container names that port `metrics`."""
    metrics = values.get("metrics") or {}
    enabled, port = bool(metrics.get("enabled")), metrics.get("port")
    configs = [o for o in objects if o["kind"] == "ConfigMap" and "data" in o]
    listen = {(c.get("data") or {}).get("KELVIN_TELEMETRY__METRICS_LISTEN") for c in configs}
    if enabled:
        p.check(f"0.0.0.0:{port}" in listen, "ConfigMap", "KELVIN_TELEMETRY__METRICS_LISTEN unset")
    else:
        p.check(listen <= {None}, "ConfigMap", "metrics listen set with metrics.enabled=false")
    for d in deployments:
        for c in (pod_spec(d) or {}).get("containers", []):
            ports = {pt.get("name"): pt.get("containerPort") for pt in c.get("ports") or []}
            if enabled:
                p.check(ports.get("metrics") == port, name_of(d), f"no metrics port {port}")
            else:
                p.check("metrics" not in ports, name_of(d), "metrics port without metrics")



def check_tls(objects: list[dict[str, Any]], values: dict[str, Any], p: Problems) -> None:
    """With `tls.enabled` the ConfigMap points the binaries at the mounted Secret's files and
    opens the health-only listener; without, no TLS setting is rendered."""
    tls = values.get("tls") or {}
    configs = [o.get("data") or {} for o in objects if o["kind"] == "ConfigMap" and "data" in o]
    p.check(bool(configs), "ConfigMap", "not rendered")
    for data in configs:
        if tls.get("enabled"):
            p.check(
                data.get("KELVIN_SERVER__TLS__CERT_FILE") == f"{TLS_DIR}/tls.crt"
                and data.get("KELVIN_SERVER__TLS__KEY_FILE") == f"{TLS_DIR}/tls.key",
                "ConfigMap",
                "TLS enabled but the certificate or key file is not configured",
            )
            p.check(
                data.get("KELVIN_SERVER__HEALTH_LISTEN") == f"0.0.0.0:{tls.get('healthPort')}",
                "ConfigMap",
                "TLS enabled but no plaintext health listener for the probes",
            )
            p.check(
                ("KELVIN_SERVER__TLS__CLIENT_CA_FILE" in data) == bool(tls.get("clientAuth")),
                "ConfigMap",
                "client CA file set without tls.clientAuth (or missing with it)",
            )
        else:
            tls_vars = [k for k in data if k.startswith("KELVIN_SERVER__TLS__")]
            p.check(not tls_vars, "ConfigMap", f"TLS settings {tls_vars} with tls.enabled=false")


def check_security(obj: dict[str, Any], p: Problems) -> None:
    spec = pod_spec(obj)
    if spec is None:
        return
    where = name_of(obj)
    pod_ctx = spec.get("securityContext") or {}
    p.check(
        pod_ctx.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot is not true"
    )
    p.check(
        (pod_ctx.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
        where,
        "pod seccompProfile is not RuntimeDefault",
    )
    p.check(
        spec.get("automountServiceAccountToken") is False, where, "mounts a service account token"
    )
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    p.check(bool(containers), where, "has no containers")
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        ctx = c.get("securityContext") or {}
        p.check(ctx.get("runAsNonRoot") is True, cw, "runAsNonRoot is not true")
        p.check(ctx.get("runAsUser") == HARDENED_UID, cw, f"runAsUser is not {HARDENED_UID}")
        p.check(ctx.get("readOnlyRootFilesystem") is True, cw, "readOnlyRootFilesystem is not true")
        p.check(
            ctx.get("allowPrivilegeEscalation") is False,
            cw,
            "allowPrivilegeEscalation is not false",
        )
        p.check(ctx.get("privileged") is not True, cw, "is privileged")
        p.check(
            "ALL" in ((ctx.get("capabilities") or {}).get("drop") or []),
            cw,
            "does not drop ALL capabilities",
        )
        p.check(not (ctx.get("capabilities") or {}).get("add"), cw, "adds capabilities")
        p.check(
            (ctx.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
            cw,
            "seccompProfile is not RuntimeDefault",
        )
        p.check(bool((c.get("resources") or {}).get("requests")), cw, "has no resource requests")


def check_deployment(obj: dict[str, Any], values: dict[str, Any], p: Problems) -> None:
    where = name_of(obj)
    component = (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component")
    p.check(component in SERVICES, where, f"unknown component label {component!r}")
    spec = pod_spec(obj) or {}
    containers = spec.get("containers") or []
    p.check(len(containers) == 1, where, f"has {len(containers)} containers, expected 1")
    grpc_port = values.get("grpcPort", 50051)
    tls = values.get("tls") or {}
    # Kubernetes gRPC probes cannot speak TLS: with TLS on they use the health-only port.
    probe_port = tls.get("healthPort") if tls.get("enabled") else grpc_port
    grace = values.get("config", {}).get("shutdownGraceSeconds", 25)
    p.check(
        spec.get("terminationGracePeriodSeconds", 30) > grace,
        where,
        f"terminationGracePeriodSeconds {spec.get('terminationGracePeriodSeconds')} does not "
        f"exceed the drain grace {grace}",
    )
    p.check(
        "checksum/config" in (obj["spec"]["template"]["metadata"].get("annotations") or {}),
        where,
        "no checksum/config annotation (config changes would not roll the pods)",
    )
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        if component in SERVICES:
            wanted = f"/usr/local/bin/{SERVICES[component]}"
            p.check(
                c.get("command") == [wanted], cw, f"command {c.get('command')} is not [{wanted}]"
            )
            p.check(c.get("args") == ["serve"], cw, f"args {c.get('args')} are not [serve]")
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = c.get(kind)
            if probe is None:
                p.add(cw, f"has no {kind}")
                continue
            others = {"httpGet", "tcpSocket", "exec"} & probe.keys()
            p.check(not others, cw, f"{kind} uses {sorted(others)}, not grpc")
            p.check(
                (probe.get("grpc") or {}).get("port") == probe_port,
                cw,
                f"{kind} is not a native gRPC probe on port {probe_port}",
            )
        ports = {pt.get("name"): pt.get("containerPort") for pt in c.get("ports") or []}
        p.check(ports.get("grpc") == grpc_port, cw, f"no port `grpc` on {grpc_port}")
        if tls.get("enabled"):
            p.check(ports.get("health") == probe_port, cw, f"no port `health` on {probe_port}")
            mounts = {m.get("name"): m for m in c.get("volumeMounts") or []}
            tls_mount = mounts.get("tls") or {}
            p.check(
                tls_mount.get("mountPath") == TLS_DIR and tls_mount.get("readOnly") is True,
                cw,
                f"does not mount the TLS Secret read-only at {TLS_DIR}",
            )
            volumes = {v.get("name"): v for v in spec.get("volumes") or []}
            p.check(
                ((volumes.get("tls") or {}).get("secret") or {}).get("secretName")
                == tls.get("secretName"),
                where,
                f"volume `tls` is not the Secret {tls.get('secretName')!r}",
            )
        env = {e["name"]: e for e in c.get("env") or []}
        p.check("KELVIN_DATABASE_URL" in env, cw, "no KELVIN_DATABASE_URL")
        p.check(
            "KELVIN_AUTH__SIGNING_KEY" in env or "KELVIN_AUTH__HS256_SECRET" in env,
            cw,
            "no signing key (KELVIN_AUTH__SIGNING_KEY or KELVIN_AUTH__HS256_SECRET)",
        )
        for secret_var in (
            "KELVIN_DATABASE_URL",
            "KELVIN_CACHE__REDIS_URL",
            "KELVIN_AUTH__SIGNING_KEY",
            "KELVIN_AUTH__HS256_SECRET",
        ):
            if secret_var in env:
                p.check(
                    "secretKeyRef" in (env[secret_var].get("valueFrom") or {}),
                    cw,
                    f"{secret_var} is not read from a Secret",
                )


def check_migration(objects: list[dict[str, Any]], values: dict[str, Any], p: Problems) -> None:
    jobs = [o for o in objects if o["kind"] == "Job"]
    enabled = (values.get("migration") or {}).get("enabled", True)
    if not enabled:
        p.check(not jobs, "migration", "migration.enabled is false but a Job is rendered")
        return
    migrate = [
        j for j in jobs if (pod_spec(j) or {}).get("containers", [{}])[0].get("args") == ["migrate"]
    ]
    if len(migrate) != 1:
        p.add("migration", f"expected one migration Job, found {len(migrate)}")
        return
    job = migrate[0]
    where = name_of(job)
    events = hook_events(job)
    p.check(
        set(HOOK_ORDER) <= events,
        where,
        f"is not a pre-install,pre-upgrade hook (hook: {sorted(events)})",
    )
    policy = annotations(job).get("helm.sh/hook-delete-policy", "")
    for wanted in ("before-hook-creation", "hook-succeeded"):
        p.check(wanted in policy, where, f"hook-delete-policy lacks {wanted}")
    container = (pod_spec(job) or {}).get("containers", [{}])[0]
    p.check(
        container.get("command") == ["/usr/local/bin/kelvin-rules"],
        where,
        f"command {container.get('command')} is not kelvin-rules",
    )
    p.check(
        (pod_spec(job) or {}).get("restartPolicy") in ("Never", "OnFailure"),
        where,
        "bad restartPolicy",
    )
    p.check(
        not container.get("envFrom"),
        where,
        "uses envFrom: a hook runs before the release's ConfigMap exists",
    )
    job_weight = int(annotations(job).get("helm.sh/hook-weight", "0"))
    # Whatever the job reads must exist before it: the user's Secret or a hook of lower weight.
    release_objects = {(o["kind"], o["metadata"]["name"]) for o in objects if not hook_events(o)}
    sa = (pod_spec(job) or {}).get("serviceAccountName", "default")
    p.check(
        ("ServiceAccount", sa) not in release_objects,
        where,
        f"runs as ServiceAccount {sa}, which the release creates only after its hooks",
    )
    for env in container.get("env") or []:
        config_ref = (env.get("valueFrom") or {}).get("configMapKeyRef")
        if config_ref:
            p.check(
                ("ConfigMap", config_ref["name"]) not in release_objects,
                where,
                f"reads ConfigMap {config_ref['name']}, which the release creates after its hooks",
            )
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if not ref:
            continue
        secret = next(
            (o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == ref["name"]),
            None,
        )
        if secret is None:
            continue  # the user's existingSecret: checked in check_secret_refs
        p.check(
            set(HOOK_ORDER) <= hook_events(secret)
            and int(annotations(secret).get("helm.sh/hook-weight", "0")) < job_weight,
            where,
            f"reads Secret {ref['name']}, which is not a pre-install,pre-upgrade hook of lower "
            f"weight than the job",
        )


def check_secret_refs(objects: list[dict[str, Any]], values: dict[str, Any], p: Problems) -> None:
    existing = (values.get("secrets") or {}).get("existingSecret") or ""
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    p.check(
        bool(existing) != bool(secrets),
        "secrets",
        f"expected either existingSecret or a chart-created Secret (existingSecret={existing!r}, "
        f"rendered {sorted(secrets)})",
    )
    for obj in objects:
        for c in (pod_spec(obj) or {}).get("containers") or []:
            for env in c.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if not ref:
                    continue
                where = f"{name_of(obj)} env {env['name']}"
                if ref.get("optional") and ref["name"] in secrets:
                    # An optional key (the audit HMAC key) may be absent, never empty.
                    data = secrets[ref["name"]].get("stringData") or {}
                    p.check(
                        ref["key"] not in data or bool(data[ref["key"]]),
                        where,
                        f"key {ref['key']!r} is empty",
                    )
                elif ref["name"] in secrets:
                    data = {
                        **(secrets[ref["name"]].get("stringData") or {}),
                        **(secrets[ref["name"]].get("data") or {}),
                    }
                    p.check(
                        ref["key"] in data,
                        where,
                        f"key {ref['key']!r} is not in Secret {ref['name']}",
                    )
                    p.check(bool(data.get(ref["key"])), where, f"key {ref['key']!r} is empty")
                else:
                    p.check(
                        ref["name"] == existing, where, f"refers to unknown Secret {ref['name']}"
                    )


def check_rules(
    objects: list[dict[str, Any]], notes: str, values: dict[str, Any], p: Problems
) -> None:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
        check_security(obj, p)
        if obj["metadata"].get("namespace") not in (None, NAMESPACE):
            p.add(name_of(obj), "hard-codes a namespace")
    deployments = by_kind.get("Deployment", [])
    services = by_kind.get("Service", [])
    for d in deployments:
        check_deployment(d, values, p)
    components = {
        (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") for d in deployments
    }
    enabled = {n for n, s in (values.get("services") or {}).items() if s.get("enabled", True)}
    p.check(
        components == enabled & SERVICES.keys(),
        "deployments",
        f"rendered components {sorted(c for c in components if c)}, enabled {sorted(enabled)}",
    )

    grpc_port = values.get("grpcPort", 50051)
    for svc in services:
        where = name_of(svc)
        selector = svc["spec"].get("selector") or {}
        p.check(
            any(selects(selector, pod_labels(d)) for d in deployments),
            where,
            "its selector matches no Deployment's pods",
        )
        grpc = [pt for pt in svc["spec"].get("ports", []) if pt.get("name") == "grpc"]
        p.check(
            len(grpc) == 1
            and grpc[0].get("port") == grpc_port
            and grpc[0].get("appProtocol") == "grpc",
            where,
            f"needs one port `grpc` on {grpc_port} with appProtocol grpc",
        )
    p.check(len(services) == len(deployments), "services", "not one Service per Deployment")

    hpa_targets = set()
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]
        hpa_targets.add(target["name"])
        p.check(
            target.get("kind") == "Deployment"
            and any(d["metadata"]["name"] == target["name"] for d in deployments),
            name_of(hpa),
            f"targets missing {target.get('kind')}/{target['name']}",
        )
        p.check(
            hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"],
            name_of(hpa),
            "minReplicas > maxReplicas",
        )
    for d in deployments:
        scaled = d["metadata"]["name"] in hpa_targets
        p.check(
            scaled != ("replicas" in d["spec"]),
            name_of(d),
            "sets replicas while an HPA scales it" if scaled else "has neither replicas nor an HPA",
        )
    for pdb in by_kind.get("PodDisruptionBudget", []):
        selector = (pdb["spec"].get("selector") or {}).get("matchLabels") or {}
        p.check(
            any(selects(selector, pod_labels(d)) for d in deployments),
            name_of(pdb),
            "its selector matches no Deployment's pods",
        )

    check_metrics(objects, deployments, values, p)

    monitors = by_kind.get("ServiceMonitor", [])
    sm_enabled = (values.get("serviceMonitor") or {}).get("enabled", False)
    p.check(
        bool(monitors) == bool(sm_enabled),
        "serviceMonitor",
        f"serviceMonitor.enabled={sm_enabled} but {len(monitors)} ServiceMonitor rendered",
    )
    for sm in monitors:
        check_service_monitor(sm, services, p)
        schemes = {ep.get("scheme", "http") for ep in (sm.get("spec") or {}).get("endpoints") or []}
        wanted = "https" if (values.get("tls") or {}).get("enabled") else "http"
        p.check(schemes == {wanted}, name_of(sm), f"scrapes with {sorted(schemes)}, not {wanted}")
    check_tls(objects, values, p)

    tests = [o for o in objects if "test" in hook_events(o)]
    p.check(
        len(tests) == 1 and tests[0]["kind"] == "Pod", "helm test", "expected one test Pod hook"
    )
    for t in tests:
        args = " ".join(
            " ".join(c.get("args") or []) for c in (pod_spec(t) or {}).get("containers", [])
        )
        for svc in services:
            p.check(
                f"-addr={svc['metadata']['name']}:{grpc_port}" in args,
                name_of(t),
                f"does not probe {name_of(svc)}",
            )
        if (values.get("tls") or {}).get("enabled"):
            p.check("-tls" in args.split(), name_of(t), "probes a TLS port without -tls")

    check_migration(objects, values, p)
    check_secret_refs(objects, values, p)
    p.check("Kelvin" in notes, "NOTES.txt", "not rendered")


def merged_values(chart: helm.Chart, values: dict[str, Any]) -> dict[str, Any]:
    """The values a release would use: the chart's defaults coalesced with the file's."""
    return chart.merge_values(values)


# --- driver ----------------------------------------------------------------------------------


def check_file(
    chart: helm.Chart, chart_dir: Path, label: str, values: dict[str, Any]
) -> tuple[int, list[str]]:
    p = Problems()
    lint = helm.lint(str(chart_dir), values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    for msg in lint.get("messages", []):
        # 1 is INFO (e.g. "icon is recommended"); warnings fail like errors (--strict).
        if msg.get("severity", 0) >= 2:
            p.add(f"lint {msg.get('path')}", msg.get("error", ""))
    for err in lint.get("errors") or []:
        p.add("lint", str(err))
    try:
        chart.validate_schema(values)
        objects, notes = render(chart, values)
    except helm.HelmError as e:
        return 0, [f"render: {e}"]
    validated = 0
    for obj in objects:
        if validate_schema(obj, p):
            validated += 1
    check_rules(objects, notes, merged_values(chart, values), p)
    counts: dict[str, int] = {}
    for obj in objects:
        counts[obj["kind"]] = counts.get(obj["kind"], 0) + 1
    for kind, n in EXPECTED_KINDS.get(label, {}).items():
        p.check(
            counts.get(kind, 0) == n,
            "rendered kinds",
            f"{n} {kind} expected, {counts.get(kind, 0)} rendered",
        )
    return validated, p.items


def check_refusals(chart: helm.Chart) -> list[str]:
    problems = []
    for what, values, fragment in MUST_FAIL:
        try:
            chart.validate_schema(values)
            render(chart, values)
        except helm.HelmError as e:
            if fragment not in str(e):
                problems.append(f"refused {what}, but the error does not name {fragment!r}: {e}")
            continue
        problems.append(f"accepted {what}: {values}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--chart", type=Path, default=Path(__file__).resolve().parents[2] / "helm" / "kelvin"
    )
    args = parser.parse_args()
    chart_dir: Path = args.chart
    helm.disable_logging()
    started = time.monotonic()
    failed = False
    files = sorted((chart_dir / "ci").glob("*-values.yaml"))
    if not files:
        print(f"chart: no ci/*-values.yaml in {chart_dir}", file=sys.stderr)
        return 1
    labels = {f.name.removesuffix("-values.yaml") for f in files}
    for missing in sorted(EXPECTED_KINDS.keys() - labels):
        print(f"chart: FAILED: ci/{missing}-values.yaml is missing", file=sys.stderr)
        failed = True
    with helm.Chart.load(str(chart_dir)) as chart:
        # The chart's own values.yaml, lint only: by design it cannot render without a secret
        # (lint would only log the `required` misses), so it is linted with an existing one.
        lint = helm.lint(
            str(chart_dir),
            {"secrets": {"existingSecret": "kelvin"}},
            strict=True,
            kube_version=f"v{KUBE_VERSION}.0",
        )
        lint_problems = [
            f"{m.get('path')}: {m.get('error')}"
            for m in lint.get("messages", [])
            if m.get("severity", 0) >= 2
        ] + [str(e) for e in lint.get("errors") or []]
        if lint_problems:
            failed = True
            print("chart: values.yaml (+ secrets.existingSecret): lint FAILED", file=sys.stderr)
            for problem in lint_problems:
                print(f"  - {problem}", file=sys.stderr)
        else:
            print("chart: values.yaml (+ secrets.existingSecret): lint ok")
        for path in files:
            label = path.name.removesuffix("-values.yaml")
            values = yaml.safe_load(path.read_text()) or {}
            validated, problems = check_file(chart, chart_dir, label, values)
            if problems:
                failed = True
                print(f"chart: ci/{path.name}: FAILED ({len(problems)} problems)", file=sys.stderr)
                for problem in problems:
                    print(f"  - {problem}", file=sys.stderr)
            else:
                print(
                    f"chart: ci/{path.name}: lint ok, {validated} manifests valid "
                    f"(Kubernetes {KUBE_VERSION}, strict), rules ok"
                )
        refusals = check_refusals(chart)
        if refusals:
            failed = True
            print("chart: values that must be refused: FAILED", file=sys.stderr)
            for problem in refusals:
                print(f"  - {problem}", file=sys.stderr)
        else:
            print(f"chart: {len(MUST_FAIL)} bad value sets refused")
    elapsed = time.monotonic() - started
    if failed:
        print(f"chart: FAILED in {elapsed:.1f}s", file=sys.stderr)
        return 1
    print(f"chart: ok in {elapsed:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
