"""B9: scale-out. 1, 2 and 3 Coffer replicas sharing one PostgreSQL database,
one Redis and one Garage bucket (the real deployment shape, on loopback) behind
nginx (one upstream with all replicas, keepalive), serving a small object:
GET req/s with wrk (2 threads, BENCH_CONNECTIONS = 32 connections). Reported: req/s per replica
count, the scaling factor against one replica, nginx's own cost (1 replica
through nginx vs direct), CPU-seconds of every replica, of nginx, of wrk and of the
shared services (Garage, PostgreSQL, Redis: all processes of that name), and
how busy the machine was (all cores, from /proc/stat); from those, the CPU
milliseconds each party spends per GET and the request rate at which that
CPU would fill every core (the CPU-bound ceiling) against the measured rate:
measured far below the ceiling means latency-bound (too few connections, or
time spent waiting on Garage), not CPU-bound.

No target: on the 2-core benchmark machine the load generator, nginx, the
replicas, Garage, PostgreSQL and Redis share the same two cores, so the
machine saturates before one replica does and the factor stays near 1 (see
docs/performance.md). On a real cluster each replica brings its own cores.

ROUNDS order-swapped rounds (1,2,3,direct then reversed), DURATION s per run
after a short warm-up; medians of the rounds. Replicas run with workers off.
Environment: BENCH_ROUNDS (5), BENCH_DURATION (5 s), BENCH_QUICK=1 (1 round,
2 s), BENCH_POSTGRES, BENCH_REDIS, BENCH_REPLICAS (3), BENCH_OBJECT_BYTES (4096).
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import time

import harness as h

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if h.QUICK else "5"))
DURATION = int(os.environ.get("BENCH_DURATION", "2" if h.QUICK else "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
REPLICAS = int(os.environ.get("BENCH_REPLICAS", "3"))
OBJECT_BYTES = int(os.environ.get("BENCH_OBJECT_BYTES", "4096"))
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379")
SERVICES = ("garage", "postgres", "redis-server")
LUA = """
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
"""


def nginx_balancer(ports):
    """nginx, one worker, in front of these replicas (round robin, keepalive to each)."""
    port = h.free_port()
    directory = tempfile.mkdtemp(prefix="nginx-lb-", dir=h.WORK)
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in ports)
    config = f"""
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    upstream coffer {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://coffer;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_request_buffering off;
            proxy_buffering off;
        }}
    }}
}}
"""
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as f:
        f.write(config)
    process = h.spawn(["nginx", "-c", path, "-p", directory], log_name=f"nginx-lb-{port}.log")
    h.wait_for(f"http://127.0.0.1:{port}/health/live")
    return f"http://127.0.0.1:{port}", process


def main():
    h.prepare()
    h.exit_on_signals()
    h.build_release()
    s3 = h.garage()
    s3["bucket"] = h.garage_bucket(s3, "coffer-bench")
    shared = {
        "COFFER_DATABASE_URL": h.postgres_database(),
        "COFFER_REDIS_URL": REDIS,
        "COFFER_CACHE_NAMESPACE": f"bench-scale-{int(time.time())}",
        "COFFER_MASTER_KEY": os.urandom(32).hex(),  # the same for every replica, as in deploy.md
        "COFFER_RUN_WORKERS": "false",
    }
    data_dir = tempfile.mkdtemp(prefix="coffer-scale-", dir=h.WORK)
    prefix = f"bench-scale-{int(time.time())}/"
    envs = [h.coffer_env(h.free_port(), data_dir, s3, shared, s3_prefix=prefix) for _ in range(REPLICAS)]
    password = "bench-admin-password-" + os.urandom(8).hex()
    subprocess.run([h.BINARY, "migrate"], env=envs[0], check=True, capture_output=True, timeout=120)
    subprocess.run([h.BINARY, "user", "create", "bench", "--role", "admin", "--password-stdin"],
                   input=password + "\n", env=envs[0], check=True, capture_output=True, text=True, timeout=120)
    replicas = [h.serve(env) for env in envs]
    token = h.json_request(replicas[0][0] + "/api/v1/auth/login",
                           {"username": "bench", "password": password})["access_token"]
    h.json_request(replicas[0][0] + "/api/v1/buckets", {"name": "bench-b9"}, token)
    payload = os.urandom(OBJECT_BYTES)
    subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", "-T", "-",
                    f"{replicas[0][0]}/api/v1/buckets/bench-b9/objects/small.bin"], input=payload, check=True, timeout=60)
    expected = hashlib.sha256(payload).hexdigest()
    auth = ["-H", f"Authorization: Bearer {token}"]
    for url, _ in replicas:  # every replica serves the same bytes, from the shared store, with the same token
        if h.sha256_of_download([*auth, f"{url}/api/v1/buckets/bench-b9/objects/small.bin"]) != expected:
            sys.exit(f"B9: {url} served different bytes")

    targets = {}
    balancers = {}
    for n in range(1, REPLICAS + 1):
        base, process = nginx_balancer([url.rsplit(":", 1)[1] for url, _ in replicas[:n]])
        targets[f"{n} via nginx"] = base + "/api/v1/buckets/bench-b9/objects/small.bin"
        balancers[f"{n} via nginx"] = process
        if h.sha256_of_download([*auth, targets[f"{n} via nginx"]]) != expected:
            sys.exit(f"B9: nginx over {n} replicas served different bytes")
    targets["1 direct"] = replicas[0][0] + "/api/v1/buckets/bench-b9/objects/small.bin"

    script = h.lua_script("b9-get.lua", LUA)
    env = {"BENCH_TOKEN": token}
    runs = {name: [] for name in targets}
    for round_number in range(ROUNDS):
        order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
        for name in order:
            h.wrk_run(targets[name], script, threads=2, connections=CONNECTIONS, duration=1, env=env)  # warm-up
            cpu_before = [h.cpu_seconds(p.pid) for _, p in replicas]
            nginx_before = h.tree_usage(balancers[name].pid)["cpu_seconds"] if name in balancers else 0.0
            services_before = {s: h.cpu_seconds_of(s) for s in SERVICES}
            busy_before, total_before = h.busy_cores()
            result = h.wrk_run(targets[name], script, threads=2, connections=CONNECTIONS, duration=DURATION, env=env)
            busy_after, total_after = h.busy_cores()
            result["service_cpu_seconds"] = {s: h.cpu_seconds_of(s) - services_before[s] for s in SERVICES}
            result["replica_cpu_seconds"] = [h.cpu_seconds(p.pid) - b for (_, p), b in zip(replicas, cpu_before)]
            result["nginx_cpu_seconds"] = (h.tree_usage(balancers[name].pid)["cpu_seconds"] - nginx_before
                                           if name in balancers else 0.0)
            result["machine_busy"] = (busy_after - busy_before) / max(total_after - total_before, 1)
            runs[name].append(result)
            h.log(f"round {round_number + 1} {name}: {result['rps']:.0f} req/s, machine {100 * result['machine_busy']:.0f}% busy, "
                  f"replica CPU {', '.join(f'{c:.1f}' for c in result['replica_cpu_seconds'])} s, "
                  f"nginx {result['nginx_cpu_seconds']:.1f} s, wrk {result['wrk_cpu_seconds']:.1f} s, "
                  + ", ".join(f"{s} {c:.1f} s" for s, c in result["service_cpu_seconds"].items()))

    rps = {name: h.median([r["rps"] for r in results]) for name, results in runs.items()}
    busy = {name: h.median([r["machine_busy"] for r in results]) for name, results in runs.items()}
    one = rps["1 via nginx"]
    rows = [("B9 GET 4 KiB, 1 replica via nginx (req/s)", one, None, None, "report", True)]
    for n in range(2, REPLICAS + 1):
        rows.append((f"B9 {n} replicas vs 1 (req/s, scaling factor)", rps[f"{n} via nginx"], one, rps[f"{n} via nginx"] / one,
                     "report", True))
    rows.append(("B9 1 replica via nginx vs direct (req/s)", one, rps["1 direct"], one / rps["1 direct"], "report", True))
    for name in targets:
        rows.append((f"B9 machine busy, {name} (% of all cores)", 100 * busy[name], None, None, "report", True))
    # Where it saturates: CPU per request of each party (1 replica via nginx), and the request rate
    # at which that CPU would fill every core of this machine if nothing else ran.
    first = runs["1 via nginx"]
    requests = sum(r["requests"] for r in first)
    per_request = {
        "coffer": sum(sum(r["replica_cpu_seconds"]) for r in first),
        "nginx": sum(r["nginx_cpu_seconds"] for r in first),
        "wrk": sum(r["wrk_cpu_seconds"] for r in first),
        **{service: sum(r["service_cpu_seconds"][service] for r in first) for service in SERVICES},
    }
    per_request = {name: 1000 * seconds / max(requests, 1) for name, seconds in per_request.items()}
    total_ms = sum(per_request.values())
    for name, ms in per_request.items():
        rows.append((f"B9 CPU ms per GET: {name}", ms, None, None, "report", True))
    ceiling = (os.cpu_count() or 1) * 1000 / total_ms if total_ms else None
    rows.append((f"B9 CPU-bound ceiling on {os.cpu_count()} cores (req/s) vs measured", ceiling, one,
                 ceiling / one if ceiling else None, "report", True))
    processes = {f"coffer replica {i + 1} (scale)": h.usage(p) for i, (_, p) in enumerate(replicas)}
    processes.update({f"nginx {name}, master + worker (scale)": h.tree_usage(p.pid) for name, p in balancers.items()})
    h.write_results("scale", {
        "rounds": ROUNDS,
        "duration_seconds": DURATION,
        "replicas": REPLICAS,
        "object_bytes": OBJECT_BYTES,
        "median_rps": rps,
        "scaling_factor": {name: value / one for name, value in rps.items()},
        "cpu_ms_per_request_1_replica": per_request,
        "connections": CONNECTIONS,
        "runs": runs,
        "rows": h.rows_json(rows),
        "processes": processes,
    }, h.table(rows))


if __name__ == "__main__":
    main()
