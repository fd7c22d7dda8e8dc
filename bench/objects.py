"""B1-B3: large transfers through Coffer (S3 backend on Garage) against nginx
proxying the same Garage and against Garage directly, in the same run.

B1  GET 1 GiB: Coffer vs nginx (target >= 0.95x), and vs direct
B2  PUT 1 GiB: Coffer vs nginx (target >= 0.95x), and vs direct
B3  Coffer's peak RSS streaming a 5 GiB and a 100 MiB upload (<= 64 MiB, within 8 MiB)
"""

import os
import sys

import harness as h

GIB = 1 << 30
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def main():
    h.prepare()
    h.build_release()
    s3 = h.garage()
    s3["bucket"] = h.garage_bucket(s3, "coffer-bench")
    nginx_port, _ = h.nginx_proxy(int(s3["endpoint"].rsplit(":", 1)[1]))
    coffer_url, token, coffer_process = h.coffer(s3)
    h.json_request(coffer_url + "/api/v1/buckets", {"name": "bench"}, token)
    auth = ["-H", f"Authorization: Bearer {token}"]
    source = h.test_file("one-gib.bin", GIB)
    expected = h.sha256_file(source)

    direct = f"{s3['endpoint']}/{s3['bucket']}/direct.bin"
    proxied = f"http://127.0.0.1:{nginx_port}/{s3['bucket']}/proxied.bin"
    through = f"{coffer_url}/api/v1/buckets/bench/objects/coffer.bin"
    paths = {
        "direct": (direct, h.sigv4(s3)),
        "nginx": (proxied, h.sigv4(s3)),
        "coffer": (through, auth),
    }
    samples = {f"{op}_{who}": [] for op in ("put", "get") for who in paths}
    order = list(paths)
    for round_number in range(ROUNDS):
        # Rotate the order every round so no contestant always runs first (warm caches, page cache).
        rotated = order[round_number % len(order):] + order[:round_number % len(order)]
        for who in rotated:
            url, credentials = paths[who]
            seconds, rate = h.curl([*credentials, "-T", source, url])
            samples[f"put_{who}"].append(rate)
        for who in rotated:
            url, credentials = paths[who]
            seconds, rate = h.curl([*credentials, url])
            samples[f"get_{who}"].append(rate)
        h.log(f"round {round_number + 1}/{ROUNDS}: " + ", ".join(f"{k}={v[-1] / 2**20:.0f}" for k, v in samples.items()))
    for who, (url, credentials) in paths.items():
        digest = h.sha256_of_download([*credentials, url])
        if digest != expected:
            sys.exit(f"{who}: downloaded bytes differ from the source")

    medians = {k: h.median(v) / 2**20 for k, v in samples.items()}
    cpu_seconds = h.cpu_seconds(coffer_process.pid)
    # Each round moved 1 GiB in and 1 GiB out through Coffer (plus the verifying download).
    cpu_per_gib = cpu_seconds / (2 * ROUNDS + 1)

    # B3 in a fresh process, so earlier transfers' allocations do not count.
    coffer_process.terminate()
    coffer_process.wait(timeout=30)
    coffer_url, token, coffer_process = h.coffer(s3)
    h.json_request(coffer_url + "/api/v1/buckets", {"name": "bench"}, token)
    rss = {}
    for label, size in (("100 MiB", 100 << 20), ("5 GiB", 5 * GIB)):
        h.reset_peak_rss(coffer_process.pid)
        baseline = h.peak_rss_mib(coffer_process.pid)
        # Streamed from a generator with no declared length: the multipart path.
        feeder = f"head -c {size} /dev/zero | curl -sS --fail -o /dev/null -T - -H 'Authorization: Bearer {token}' {coffer_url}/api/v1/buckets/bench/objects/rss-{size}.bin"
        if os.system(feeder) != 0:
            sys.exit(f"{label} upload failed")
        rss[label] = {"peak_mib": h.peak_rss_mib(coffer_process.pid), "baseline_mib": baseline}
        h.log(f"{label}: peak RSS {rss[label]['peak_mib']:.1f} MiB")

    get_ratio = medians["get_coffer"] / medians["get_nginx"]
    put_ratio = medians["put_coffer"] / medians["put_nginx"]
    rss_flat = abs(rss["5 GiB"]["peak_mib"] - rss["100 MiB"]["peak_mib"])
    rows = [
        ("B1 GET 1 GiB (MiB/s)", medians["get_coffer"], medians["get_nginx"], get_ratio, ">= 0.95", get_ratio >= 0.95),
        ("B1 GET vs direct Garage", medians["get_coffer"], medians["get_direct"], medians["get_coffer"] / medians["get_direct"], "report", True),
        ("B1 nginx vs direct", medians["get_nginx"], medians["get_direct"], medians["get_nginx"] / medians["get_direct"], "report", True),
        ("B2 PUT 1 GiB (MiB/s)", medians["put_coffer"], medians["put_nginx"], put_ratio, ">= 0.95", put_ratio >= 0.95),
        ("B2 PUT vs direct Garage", medians["put_coffer"], medians["put_direct"], medians["put_coffer"] / medians["put_direct"], "report", True),
        ("B2 nginx vs direct", medians["put_nginx"], medians["put_direct"], medians["put_nginx"] / medians["put_direct"], "report", True),
        ("B3 peak RSS, 5 GiB upload (MiB)", rss["5 GiB"]["peak_mib"], 64, rss["5 GiB"]["peak_mib"] / 64, "<= 64 MiB", rss["5 GiB"]["peak_mib"] <= 64),
        ("B3 5 GiB minus 100 MiB peak (MiB)", rss_flat, 8, rss_flat / 8, "<= 8 MiB", rss_flat <= 8),
    ]
    table = "| figure | Coffer | reference | ratio | target | pass |\n|---|---|---|---|---|---|\n" + "\n".join(
        f"| {name} | {ours:.1f} | {ref:.1f} | {ratio:.2f} | {target} | {'yes' if ok else 'NO'} |"
        for name, ours, ref, ratio, target, ok in rows
    )
    h.write_results("objects", {
        "rounds": ROUNDS,
        "median_mib_per_s": medians,
        "samples_bytes_per_s": samples,
        "peak_rss": rss,
        "ratios": {"get_vs_nginx": get_ratio, "put_vs_nginx": put_ratio},
        "coffer_cpu_seconds_per_gib": cpu_per_gib,
    }, table)


if __name__ == "__main__":
    main()
