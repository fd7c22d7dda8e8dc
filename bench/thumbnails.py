"""B4 and B7: thumbnails.

B4  24 MP and 12 MP JPEG -> 256 px WebP and JPEG: Coffer's renderer (the
    hidden `coffer thumbnail` command, process start included, like the
    references) and Coffer over HTTP (cold: every request a new image) vs
    `vipsthumbnail` and ImageMagick `convert -thumbnail`; p50 over RUNS runs.
    Quality: DSSIM (1/SSIM - 1, luma, 8x8 windows) of Coffer's output
    against libvips' output with the same output settings (lossless WebP,
    JPEG Q=82); ImageMagick's distance to libvips is reported beside it. Target: p50 <= 0.8x vipsthumbnail, DSSIM <= 0.003.
B7  A cached thumbnail GET through Coffer vs nginx serving the same bytes
    from disk (wrk, 2 threads, 32 connections): target >= 0.5x.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import harness as h

RUNS = int(os.environ.get("BENCH_RUNS", "20"))
IMAGES = {"24MP": (6000, 4000), "12MP": (4240, 2832)}


def ensure_python_packages():
    try:
        import numpy  # noqa: F401
        import PIL  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "numpy", "pillow"], check=True)


def photo(name, size):
    """A photo-like JPEG (smooth plasma, scaled up) generated once; none is committed."""
    path = os.path.join(h.WORK, f"{name}.jpg")
    if not os.path.exists(path):
        w, hgt = size
        # Smooth colour fields, as in most photos; pure plasma is noise at thumbnail scale.
        subprocess.run(["convert", "-size", f"{w // 16}x{hgt // 16}", "-seed", "7", "plasma:fractal", "-blur", "0x2",
                        "-resize", f"{w}x{hgt}!", "-quality", "90", path], check=True)
    return path


def hyperfine(commands):
    out = os.path.join(h.WORK, "hyperfine.json")
    args = ["hyperfine", "-N", "--warmup", "2", "--runs", str(RUNS), "--export-json", out]
    for name, command in commands.items():
        args += ["-n", name, command]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return {r["command"]: r["median"] for r in json.load(f)["results"]}


def dssim(a_path, b_path):
    import numpy as np
    from PIL import Image

    def luma(path):
        return np.asarray(Image.open(path).convert("L"), dtype=np.float64)

    a, b = luma(a_path), luma(b_path)
    hgt, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    a, b = a[:hgt - hgt % 8, :w - w % 8], b[:hgt - hgt % 8, :w - w % 8]
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def windows(x):
        return x.reshape(x.shape[0] // 8, 8, x.shape[1] // 8, 8).swapaxes(1, 2).reshape(-1, 64)

    wa, wb = windows(a), windows(b)
    ma, mb = wa.mean(1), wb.mean(1)
    va, vb = wa.var(1), wb.var(1)
    cov = ((wa - ma[:, None]) * (wb - mb[:, None])).mean(1)
    ssim = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return 1 / ssim.mean() - 1


def render_benchmarks():
    rows, quality = {}, {}
    for name, size in IMAGES.items():
        source = photo(name, size)
        for fmt, ext in (("webp", "webp"), ("jpeg", "jpg")):
            out = {who: os.path.join(h.WORK, f"{name}-{who}.{ext}") for who in ("coffer", "vips", "magick")}
            medians = hyperfine({
                "coffer": f"{h.BINARY} thumbnail {source} --size 256 --format {fmt} -o {out['coffer']}",
                # The same output settings as Coffer's: lossless WebP, JPEG quality 82.
                "vips": f"vipsthumbnail {source} -s 256 -o {out['vips']}[{'lossless' if fmt == 'webp' else 'Q=82'}]",
                "magick": f"convert {source} -thumbnail 256x256 {out['magick']}",
            })
            rows[f"{name} {fmt}"] = medians
            quality[f"{name} {fmt}"] = dssim(out["coffer"], out["vips"])
            quality[f"{name} {fmt} (ImageMagick)"] = dssim(out["magick"], out["vips"])
            if fmt == "jpeg":
                # Context for the JPEG figure: each JPEG's distance to libvips' lossless pixels
                # (the WebP case above ran first), Coffer's beside libvips' own.
                pixels = os.path.join(h.WORK, f"{name}-vips.webp")
                quality[f"{name} jpeg (Coffer to libvips pixels)"] = dssim(out["coffer"], pixels)
                quality[f"{name} jpeg (libvips to its pixels)"] = dssim(out["vips"], pixels)
            h.log(f"{name} -> {fmt}: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in medians.items())
                  + f", DSSIM {quality[f'{name} {fmt}']:.4f}")
    return rows, quality


def http_cold(url, token):
    """p50 of first-time thumbnail GETs, each of a distinct image (new content, so no cache helps)."""
    source = open(photo("24MP", IMAGES["24MP"]), "rb").read()
    auth = ["-H", f"Authorization: Bearer {token}"]
    times = []
    for n in range(RUNS):
        # Bytes after the JPEG end marker change the content hash, not the picture.
        body = source + f"variant {n} {time.time()}".encode()
        path = os.path.join(h.WORK, "variant.jpg")
        with open(path, "wb") as f:
            f.write(body)
        subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", *auth, "-H", "Content-Type: image/jpeg",
                        "-T", path, f"{url}/api/v1/buckets/pics/objects/p{n}.jpg"], check=True)
        result = subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total}", *auth,
                                 f"{url}/api/v1/buckets/pics/thumbnails/p{n}.jpg?size=256"],
                                check=True, capture_output=True, text=True)
        times.append(float(result.stdout))
    return h.median(times)


def nginx_static(root):
    port = h.free_port()
    directory = tempfile.mkdtemp(prefix="nginx-static-", dir=h.WORK)
    config = f"""
worker_processes 1;
daemon off;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as f:
        f.write(config)
    h.spawn(["nginx", "-c", path, "-p", directory], log_name="nginx-static.log")
    h.wait_for(f"http://127.0.0.1:{port}/thumb.webp")
    return port


def wrk(url, headers=()):
    args = ["wrk", "-t2", "-c32", "-d5s"]
    for header in headers:
        args += ["-H", header]
    output = subprocess.run([*args, url], check=True, capture_output=True, text=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def main():
    h.prepare()
    ensure_python_packages()
    h.build_release()
    rows, quality = render_benchmarks()
    url, token, _ = h.coffer(extra_env={"COFFER_RUN_WORKERS": "false"})
    h.json_request(url + "/api/v1/buckets", {"name": "pics"}, token)
    cold = http_cold(url, token)
    vips_24_webp = rows["24MP webp"]["vips"]
    h.log(f"HTTP cold 24 MP -> 256 webp: {cold * 1000:.0f} ms (vips CLI {vips_24_webp * 1000:.0f} ms)")

    thumb_url = f"{url}/api/v1/buckets/pics/thumbnails/p0.jpg?size=256"
    static_root = tempfile.mkdtemp(prefix="static-", dir=h.WORK)
    os.chmod(static_root, 0o755)  # nginx workers run unprivileged
    subprocess.run(["curl", "-sS", "--fail", "-o", os.path.join(static_root, "thumb.webp"),
                    "-H", f"Authorization: Bearer {token}", thumb_url], check=True)
    os.chmod(os.path.join(static_root, "thumb.webp"), 0o644)
    nginx_port = nginx_static(static_root)
    coffer_rps = wrk(thumb_url, [f"Authorization: Bearer {token}"])
    nginx_rps = wrk(f"http://127.0.0.1:{nginx_port}/thumb.webp")

    table_rows = []
    for case, medians in rows.items():
        ratio = medians["coffer"] / medians["vips"]
        table_rows.append((f"B4 {case} -> 256 px, p50 s", medians["coffer"], medians["vips"], ratio, "<= 0.8x vips",
                           ratio <= 0.8))
        table_rows.append((f"B4 {case}: ImageMagick, p50 s", medians["magick"], medians["vips"],
                           medians["magick"] / medians["vips"], "report", True))
        table_rows.append((f"B4 {case}: DSSIM vs libvips", quality[case], 0.003, quality[case] / 0.003, "<= 0.003",
                           quality[case] <= 0.003))
        magick_distance = quality[f"{case} (ImageMagick)"]
        table_rows.append((f"B4 {case}: ImageMagick DSSIM vs libvips", magick_distance, 0.003, magick_distance / 0.003,
                           "report", True))
        if case.endswith("jpeg"):
            ours, theirs = quality[f"{case} (Coffer to libvips pixels)"], quality[f"{case} (libvips to its pixels)"]
            table_rows.append((f"B4 {case}: DSSIM to libvips' lossless pixels, Coffer vs libvips' own JPEG", ours,
                               theirs, ours / theirs, "report", True))
    table_rows.append(("B4 HTTP cold 24MP webp, p50 s", cold, vips_24_webp, cold / vips_24_webp, "report", True))
    table_rows.append(("B7 cached thumbnail GET (req/s)", coffer_rps, nginx_rps, coffer_rps / nginx_rps, ">= 0.5x",
                       coffer_rps / nginx_rps >= 0.5))
    table = "| figure | Coffer | reference | ratio | target | pass |\n|---|---|---|---|---|---|\n" + "\n".join(
        f"| {name} | {ours:.4f} | {ref:.4f} | {ratio:.2f} | {target} | {'yes' if ok else 'NO'} |"
        for name, ours, ref, ratio, target, ok in table_rows)
    h.write_results("thumbnails", {
        "runs": RUNS,
        "render_p50_seconds": rows,
        "dssim_vs_vips": quality,
        "http_cold_p50_seconds": cold,
        "cached_get_rps": {"coffer": coffer_rps, "nginx": nginx_rps},
    }, table)


if __name__ == "__main__":
    main()
