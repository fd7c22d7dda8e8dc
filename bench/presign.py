"""B6: presigned URLs.

B6a  In process: the cost of one presigned gateway GET URL with Coffer's own
     signer (examples/presign_bench.rs: object path encoding, HMAC-SHA256,
     URL formatting; median over batches). Target: <= 20 us per URL.
B6b  Over HTTP: `POST /api/v1/presign` (bearer token, JSON body; bucket
     authorization from the cache, one audit event per URL) req/s with wrk
     against the bare actix-web handler of examples/bare_head.rs receiving the
     same POST. Coffer on its embedded defaults (SQLite, in-process cache),
     workers off. wrk: 1 thread, 16 connections, DURATION s per run after a
     warm-up run, ROUNDS order-swapped rounds, median of the rounds. Target: >= 0.7x.
     A URL from the run is then used: its download must hash like the upload.

Environment: BENCH_ROUNDS (5), BENCH_DURATION (5 s), BENCH_QUICK=1 (1 round, 2 s).
"""

import hashlib
import json
import os
import subprocess
import sys
import urllib.request

import harness as h

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if h.QUICK else "5"))
DURATION = int(os.environ.get("BENCH_DURATION", "2" if h.QUICK else "5"))
LUA = """
wrk.method = "POST"
wrk.body = '{"bucket":"bench-b6","key":"photos/small.jpg","method":"GET","expires_in_seconds":3600}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
"""


def in_process():
    binary = h.example_binary("presign_bench")
    output = subprocess.run([binary], check=True, capture_output=True, text=True, timeout=300,
                            env={**os.environ, **({"BENCH_QUICK": "1"} if h.QUICK else {})}).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    h.prepare()
    h.exit_on_signals()
    h.build_release()
    measured = in_process()
    h.log(f"in process: {measured['sign_median_ns']:.0f} ns per URL (verify {measured['verify_median_ns']:.0f} ns)")

    url, token, process = h.coffer(extra_env={"COFFER_RUN_WORKERS": "false"})
    h.json_request(url + "/api/v1/buckets", {"name": "bench-b6"}, token)
    payload = os.urandom(4096)
    subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-H", f"Authorization: Bearer {token}", "-T", "-",
                    f"{url}/api/v1/buckets/bench-b6/objects/photos/small.jpg"], input=payload, check=True, timeout=60)
    bare = h.bare_actix()
    script = h.lua_script("presign.lua", LUA)
    targets = {"coffer": url + "/api/v1/presign", "bare actix": bare + "/api/v1/presign"}
    runs = {name: [] for name in targets}
    usage = {"cpu_seconds": 0.0}
    for round_number in range(ROUNDS):
        order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
        for name in order:
            h.wrk_run(targets[name], script, duration=min(DURATION, 2), env={"BENCH_TOKEN": token})  # warm-up
            before = h.cpu_seconds(process.pid)
            result = h.wrk_run(targets[name], script, duration=DURATION, env={"BENCH_TOKEN": token})
            if name == "coffer":
                result["coffer_cpu_seconds"] = h.cpu_seconds(process.pid) - before
                usage["cpu_seconds"] += result["coffer_cpu_seconds"]
            runs[name].append(result)
            h.log(f"round {round_number + 1} {name}: {result['rps']:.0f} req/s, p99 {result['p99_ms']:.2f} ms")

    # The URLs work: one more presign, then its download hashes like the upload.
    presigned = h.json_request(targets["coffer"], {"bucket": "bench-b6", "key": "photos/small.jpg", "method": "GET",
                                                   "expires_in_seconds": 600}, token)
    with urllib.request.urlopen(_loopback(presigned["url"], url), timeout=30) as response:
        if hashlib.sha256(response.read()).hexdigest() != hashlib.sha256(payload).hexdigest():
            sys.exit("B6: the presigned URL served different bytes")

    coffer_rps = h.median([r["rps"] for r in runs["coffer"]])
    bare_rps = h.median([r["rps"] for r in runs["bare actix"]])
    coffer_requests = sum(r["requests"] for r in runs["coffer"])
    sign_us = measured["sign_median_ns"] / 1000
    rows = [
        ("B6a presigned GET URL, in process (us)", sign_us, 20.0, sign_us / 20.0, "<= 20 us", sign_us <= 20.0),
        ("B6a verify a presigned URL, in process (us)", measured["verify_median_ns"] / 1000, None, None, "report", True),
        ("B6b POST /api/v1/presign (req/s)", coffer_rps, bare_rps, coffer_rps / bare_rps, ">= 0.7x",
         coffer_rps / bare_rps >= 0.7),
        ("B6b presign p99 (ms)", h.median([r["p99_ms"] for r in runs["coffer"]]),
         h.median([r["p99_ms"] for r in runs["bare actix"]]), None, "report", True),
        ("B6b Coffer CPU per 1000 presigns (s)", 1000 * usage["cpu_seconds"] / coffer_requests, None, None, "report",
         True),
    ]
    final = h.usage(process)
    h.write_results("presign", {
        "rounds": ROUNDS,
        "duration_seconds": DURATION,
        "in_process": measured,
        "runs": runs,
        "rows": h.rows_json(rows),
        "processes": {"coffer (presign)": {**(final or {}), "cpu_seconds_measured": usage["cpu_seconds"]}},
    }, h.table(rows))


def _loopback(presigned_url, url):
    """Presigned URLs carry the public URL; the benchmark server's is its bind address unless configured."""
    path = presigned_url.split("/api/v1/", 1)[1]
    return f"{url}/api/v1/{path}"


if __name__ == "__main__":
    main()
