"""B3 companion: Coffer's peak RSS streaming a 100 MiB and a 3 GiB chunked
upload to Garage under glibc malloc settings (default, MALLOC_ARENA_MAX=2,
a fixed MALLOC_MMAP_THRESHOLD_, both; one S3 part in flight), each in a fresh process. Prints
`label [peak_100MiB, peak_3GiB]` in MiB. Run from bench/."""

import os
import subprocess

import harness as h

VARIANTS = [
    ("default", {}),
    ("arena2", {"MALLOC_ARENA_MAX": "2"}),
    ("mmap1m", {"MALLOC_MMAP_THRESHOLD_": "1048576"}),
    ("arena2+mmap1m", {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "1048576"}),
    ("arena1+mmap256k", {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "262144"}),
    ("inflight1", {"COFFER_S3_PARTS_IN_FLIGHT": "1"}),
    ("inflight1+mmap1m", {"COFFER_S3_PARTS_IN_FLIGHT": "1", "MALLOC_MMAP_THRESHOLD_": "1048576"}),
]


def main():
    h.prepare()
    h.build_release()
    s3 = h.garage()
    s3["bucket"] = h.garage_bucket(s3, "coffer-bench")
    for label, extra in VARIANTS:
        url, token, process = h.coffer(s3, extra_env=extra)
        h.json_request(url + "/api/v1/buckets", {"name": "bench"}, token)
        peaks = []
        for size in (100 << 20, 3 << 30):
            h.reset_peak_rss(process.pid)
            feeder = (f"head -c {size} /dev/zero | curl -sS --fail -o /dev/null -T - "
                      f"-H 'Authorization: Bearer {token}' {url}/api/v1/buckets/bench/objects/rss-{size}.bin")
            subprocess.run(feeder, shell=True, check=True)
            peaks.append(round(h.peak_rss_mib(process.pid), 1))
        print(label, peaks, flush=True)
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
