"""Shared benchmark harness: start Garage, nginx and Coffer on loopback,
measure transfers with curl, sample peak RSS, write results.

Everything binds to 127.0.0.1, every process is stopped at exit, and no
traffic leaves the machine."""

import atexit
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "bench", "work")
RESULTS = os.path.join(ROOT, "bench", "results")
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/coffer/target"))
BINARY = os.path.join(TARGET, "release", "coffer")
_children = []


def log(message):
    print(f"[bench] {message}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, timeout=30, expect=200):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == expect:
                    return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {expect} within {timeout}s")


def spawn(args, env=None, log_name=None, own_session=True):
    """Starts a server in a process group of its own (stopped as a group at exit).

    `own_session` also gives it a session of its own, hence, on a kernel with
    autogroup scheduling, a scheduling group of its own: the kernel then
    shares the CPUs between it and the load generator as two groups, whatever
    the priorities of the threads inside.
    """
    out = open(os.path.join(WORK, log_name or "proc.log"), "wb")
    placement = {"start_new_session": True} if own_session else {"process_group": 0}
    process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, **placement)
    _children.append(process)
    return process


@atexit.register
def _stop_children():
    for process in _children:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in _children:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def build_release():
    if os.environ.get("BENCH_NO_BUILD") and os.path.exists(BINARY):
        log("using the existing release build (BENCH_NO_BUILD)")
        return
    log("building coffer (release)")
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "coffer"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": TARGET})


def garage():
    """Starts (or reuses) the one-node Garage of scripts/lib/garage.sh; returns its S3 settings."""
    script = f"source {ROOT}/scripts/lib/garage.sh && garage_start >&2 && env | grep '^COFFER_TEST_S3_'"
    output = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True).stdout
    settings = dict(line.split("=", 1) for line in output.strip().splitlines())
    return {key.replace("COFFER_TEST_S3_", "").lower(): value for key, value in settings.items()}


def garage_bucket(s3, name):
    """A dedicated bucket for benchmark data, readable and writable by the test key."""
    config = os.path.expanduser(os.environ.get("COFFER_GARAGE_DIR", "~/.cache/coffer-garage")) + "/garage.toml"
    run = lambda *args: subprocess.run(["garage", "-c", config, *args], capture_output=True, text=True)
    if run("bucket", "info", name).returncode != 0:
        run("bucket", "create", name)
        run("bucket", "allow", "--read", "--write", "--owner", name, "--key", "coffer-test")
    return name


def nginx_proxy(upstream_port):
    """nginx as a plain reverse proxy (request and response buffering off) in front of Garage."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="nginx-", dir=WORK)
    config = f"""
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    upstream garage {{ server 127.0.0.1:{upstream_port}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://garage;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as f:
        f.write(config)
    process = spawn(["nginx", "-c", path, "-p", directory], log_name="nginx.log")
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return port, process
        time.sleep(0.05)
    raise RuntimeError("nginx did not start")


def coffer(s3=None, extra_env=None, data_dir=None, own_session=True):
    """A release Coffer on a free port with a first admin; returns (url, token, process)."""
    port = free_port()
    data_dir = data_dir or tempfile.mkdtemp(prefix="coffer-", dir=WORK)
    env = coffer_env(port, data_dir, s3=s3, extra_env=extra_env)
    password = "bench-admin-password-" + os.urandom(8).hex()
    subprocess.run([BINARY, "user", "create", "bench", "--role", "admin", "--password-stdin"], input=password + "\n",
                   env=env, check=True, capture_output=True, text=True)
    process = spawn([BINARY, "serve"], env=env, log_name=f"coffer-{port}.log", own_session=own_session)
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/health/ready")
    token = json_request(url + "/api/v1/auth/login", {"username": "bench", "password": password})["access_token"]
    return url, token, process


def json_request(url, body=None, token=None, method=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return json.loads(raw) if raw else None


def curl(args):
    """Runs curl, returns (seconds, bytes/s) from its own timers."""
    result = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total} %{speed_download} %{speed_upload}", *args],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"curl {' '.join(args[:3])}… failed: {result.stderr.strip()}")
    seconds, down, up = result.stdout.split()
    return float(seconds), max(float(down), float(up))


def sigv4(s3):
    return ["--aws-sigv4", "aws:amz:garage:s3", "--user", f"{s3['access_key_id']}:{s3['secret_access_key']}",
            "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_of_download(args):
    """Downloads through curl into a hash, never to disk."""
    curl_process = subprocess.Popen(["curl", "-sS", "--fail", *args], stdout=subprocess.PIPE)
    digest = hashlib.sha256()
    while chunk := curl_process.stdout.read(1 << 20):
        digest.update(chunk)
    if curl_process.wait() != 0:
        raise RuntimeError("download failed")
    return digest.hexdigest()


def test_file(name, size):
    path = os.path.join(WORK, name)
    if not os.path.exists(path) or os.path.getsize(path) != size:
        log(f"writing {size >> 20} MiB of random test data to {path}")
        with open(path, "wb") as f:
            remaining = size
            while remaining:
                block = os.urandom(min(remaining, 1 << 22))
                f.write(block)
                remaining -= len(block)
    return path


def reset_peak_rss(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": os.uname().release}


def write_results(name, payload, table):
    os.makedirs(RESULTS, exist_ok=True)
    payload = {"benchmark": name, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(), **payload}
    with open(os.path.join(RESULTS, f"{name}.json"), "w") as f:
        json.dump(payload, f, indent=2)
    with open(os.path.join(RESULTS, f"{name}.md"), "w") as f:
        f.write(table + "\n")
    print(table)


def prepare():
    os.makedirs(WORK, exist_ok=True)
    if shutil.which("curl") is None or shutil.which("nginx") is None:
        sys.exit("bench needs curl and nginx (apt-get install curl nginx)")


# ---------------------------------------------------------------------------
# Helpers for bench/run (suite.py) and B6, B8, B9. Added after the functions
# above, which are unchanged.

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
if os.environ.get("BENCH_RESULTS_DIR"):
    # bench/run's quick mode writes here, so quick numbers never replace full ones.
    RESULTS = os.path.abspath(os.environ["BENCH_RESULTS_DIR"])


def exit_on_signals():
    """SIGTERM and SIGHUP end the script through sys.exit, so the atexit cleanup stops every child."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


def wrk_run(url, script=None, threads=1, connections=16, duration=5, env=None, request_timeout=None):
    """One wrk run with latency percentiles; fails on non-2xx answers or socket errors
    (a request slower than `request_timeout` seconds, wrk's 2 s by default, is one).
    Returns {rps, requests, p50_ms, p90_ms, p99_ms, wrk_cpu_seconds}."""
    import re
    import resource
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    if request_timeout:
        args.append(f"--timeout={request_timeout}s")
    if script:
        args += ["-s", script]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run([*args, url], env={**os.environ, **(env or {})}, check=True, capture_output=True,
                            text=True, timeout=float(duration) + 30).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if re.search(r"\b0 requests in", output):
        raise RuntimeError(f"{url}: no request completed\n{output}")
    if re.search(r"Non-2xx or 3xx responses: (\d+)", output) or re.search(r"Socket errors:.*timeout [1-9]", output):
        raise RuntimeError(f"{url}: errors during the run\n{output}")
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
              "requests": int(re.search(r"(\d+) requests in", output).group(1)),
              "wrk_cpu_seconds": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    for percent in ("50", "90", "99"):
        match = re.search(rf"\s{percent}%\s+([\d.]+)(us|ms|s)\b", output)
        result[f"p{percent}_ms"] = float(match.group(1)) * scale[match.group(2)] if match else None
    return result


def lua_script(name, text):
    path = os.path.join(WORK, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def usage(process):
    """CPU-seconds and peak RSS (MiB) of a running process so far; None once it has exited."""
    try:
        return {"cpu_seconds": cpu_seconds(process.pid), "peak_rss_mib": peak_rss_mib(process.pid)}
    except (FileNotFoundError, ProcessLookupError):
        return None


def busy_cores():
    """(busy, total) jiffies from /proc/stat: the difference of two readings gives the machine's load."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def coffer_env(port, data_dir, s3=None, extra_env=None, s3_prefix=None):
    """The environment of a benchmark Coffer: coffer() uses it, and so do replicas started with serve()."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env.update({"COFFER_BIND": f"127.0.0.1:{port}", "COFFER_DATA_DIR": data_dir, "COFFER_LOG_FILTER": "warn"})
    # A configured key, as in deploy.md: on PostgreSQL, `coffer user create` does not make one of its own.
    env["COFFER_MASTER_KEY"] = os.urandom(32).hex()
    # Benchmarks measure the data path from one address; the per-address limits would throttle them.
    env.update({f"COFFER_RATE_LIMIT_{cls}_PER_MINUTE": "0" for cls in ("AUTH", "UPLOAD", "API")})
    if s3:
        env.update({
            "COFFER_STORAGE": "s3", "COFFER_S3_ENDPOINT": s3["endpoint"], "COFFER_S3_REGION": s3["region"],
            "COFFER_S3_BUCKET": s3["bucket"], "COFFER_S3_ACCESS_KEY_ID": s3["access_key_id"],
            "COFFER_S3_SECRET_ACCESS_KEY": s3["secret_access_key"], "COFFER_S3_FORCE_PATH_STYLE": "true",
            "COFFER_S3_PREFIX": s3_prefix or f"bench-{int(time.time())}/",
        })
    # BENCH_COFFER_ENV_<NAME>=value sets <NAME> for Coffer's processes only (e.g. glibc's MALLOC_*).
    env.update({k.removeprefix("BENCH_COFFER_ENV_"): v for k, v in os.environ.items()
                if k.startswith("BENCH_COFFER_ENV_")})
    env.update(extra_env or {})
    return env


def serve(env, timeout=60):
    """`coffer serve` with this environment; returns (url, process) once it is ready."""
    port = env["COFFER_BIND"].rsplit(":", 1)[1]
    process = spawn([BINARY, "serve"], env=env, log_name=f"coffer-{port}.log")
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/health/ready", timeout=timeout)
    return url, process


def postgres_database(server=None):
    """A new, empty PostgreSQL database on the local server; returns its URL."""
    server = server or os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
    name = f"coffer_bench_{int(time.time() * 1000)}"
    subprocess.run(["psql", server + "/postgres", "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True,
                   timeout=60)
    return f"{server}/{name}"


def example_binary(name):
    """A release build of examples/NAME.rs (built unless BENCH_NO_BUILD is set and it exists)."""
    path = os.path.join(TARGET, "release", "examples", name)
    if not (os.environ.get("BENCH_NO_BUILD") and os.path.exists(path)):
        log(f"building example {name} (release)")
        subprocess.run(["cargo", "build", "--release", "--locked", "--example", name], cwd=ROOT, check=True,
                       env={**os.environ, "CARGO_TARGET_DIR": TARGET})
    return path


def bare_actix():
    """The bare actix-web reference of B5 (examples/bare_head.rs; answers any method); returns its base URL."""
    port = free_port()
    spawn([example_binary("bare_head"), f"127.0.0.1:{port}"], log_name=f"bare-head-{port}.log")
    wait_for(f"http://127.0.0.1:{port}/")
    return f"http://127.0.0.1:{port}"


def table(rows, digits=2):
    """The results table every benchmark writes: (figure, ours, reference, ratio, target, ok) rows."""
    def cell(value):
        return "–" if value is None else f"{value:.{digits}f}"
    return "| figure | Coffer | reference | ratio | target | pass |\n|---|---|---|---|---|---|\n" + "\n".join(
        f"| {name} | {cell(ours)} | {cell(ref)} | {cell(ratio)} | {target} | {'yes' if ok else 'NO'} |"
        for name, ours, ref, ratio, target, ok in rows)


def rows_json(rows):
    return [{"figure": name, "coffer": ours, "reference": ref, "ratio": ratio, "target": target, "pass": bool(ok)}
            for name, ours, ref, ratio, target, ok in rows]


def cpu_seconds_of(name):
    """CPU-seconds so far of every process whose command name (/proc/PID/comm) is NAME, summed
    (Garage, PostgreSQL's backends, Redis: shared services the benchmark did not start)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() != name:
                    continue
            total += cpu_seconds(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return total


def tree_usage(pid):
    """CPU-seconds of a process and its live descendants (nginx: master and workers), and the
    largest peak RSS (MiB) among them; None once it has exited."""
    def children(parent):
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == parent:
                            found.append(int(entry))
                except (OSError, ValueError, IndexError):
                    continue
        return found
    pids, frontier = [pid], [pid]
    while frontier:
        found = children(frontier.pop())
        pids += found
        frontier += found
    total, peak = 0.0, 0.0
    for member in pids:
        try:
            total += cpu_seconds(member)
            peak = max(peak, peak_rss_mib(member))
        except (FileNotFoundError, ProcessLookupError):
            if member == pid:
                return None
    return {"cpu_seconds": total, "peak_rss_mib": peak}
