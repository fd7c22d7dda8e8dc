"""Container checks of scripts/check-deploy: Compose, the Dockerfile, the
HEALTHCHECK probe, the Garage init script, shell syntax and docs."""

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading

import yaml

from checklib import CACHE, ROOT, Failure, Skip, check, fail_if, venv_bin


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
