"""The whole performance suite (issue 13), run by bench/run.

Runs every benchmark as a subprocess with a duration budget (environment) and
a timeout, then collects their results/*.json into results/latest.json and one
table into results/latest.md. Loopback only; stops by itself; every process
a benchmark started is stopped when it ends, times out, or this suite is
interrupted (the suite is a child subreaper: orphans come back to it).

Environment:
  BENCH_QUICK=1      1 round, ~2 s per measurement; results go to bench/work/quick/
                     (never over the full results in bench/results/)
  BENCH_ONLY=a,b     run only these (names: objects thumbnails cache presign login scale)
  BENCH_SKIP=a,b     skip these; a skipped benchmark's last results are still collected
  BENCH_BUDGET=1200  seconds for the whole suite; each benchmark's timeout is cut to what is left
  BENCH_KEEP_GARAGE=1  leave a Garage this run started running (it is stopped otherwise)
"""

import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as h  # noqa: E402

QUICK = h.QUICK
BUDGET = float(os.environ.get("BENCH_BUDGET", "1200"))
FULL_ROUNDS = "5"

# name, script, environment (full run), environment (quick run), timeout (s), figures, order-swapped rounds?
BENCHMARKS = [
    ("objects", "objects.py", {"BENCH_ROUNDS": FULL_ROUNDS}, {"BENCH_ROUNDS": "1"}, 420, "B1-B3",
     "yes: the order of direct, nginx and Coffer rotates every round"),
    ("thumbnails", "thumbnails.py", {"BENCH_RUNS": "20"}, {"BENCH_RUNS": "2"}, 300, "B4, B7",
     "no: hyperfine runs (BENCH_RUNS) per command; B7 is one 5 s wrk run each"),
    ("cache", "cache.py", {"BENCH_ROUNDS": FULL_ROUNDS, "BENCH_DURATION": "4"},
     {"BENCH_ROUNDS": "1", "BENCH_DURATION": "2"}, 330, "B5", "yes: forward and reversed order alternate"),
    ("presign", "presign.py", {"BENCH_ROUNDS": FULL_ROUNDS, "BENCH_DURATION": "5"},
     {"BENCH_ROUNDS": "1", "BENCH_DURATION": "2"}, 240, "B6", "yes (HTTP part)"),
    ("login", "login.py", {"BENCH_ROUNDS": FULL_ROUNDS, "BENCH_DURATION": "5"},
     {"BENCH_ROUNDS": "1", "BENCH_DURATION": "2"}, 360, "B8", "yes: idle and loaded alternate"),
    ("scale", "scale.py", {"BENCH_ROUNDS": FULL_ROUNDS, "BENCH_DURATION": "5"},
     {"BENCH_ROUNDS": "1", "BENCH_DURATION": "2"}, 300, "B9", "yes: replica counts forward and reversed"),
]

ROW = re.compile(r"^\|\s*(B\d[^|]*?)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|\s*([^|]*?)\s*\|$")
_running = None


def log(message):
    print(f"[suite] {message}", flush=True)


def become_subreaper():
    """Orphaned grandchildren (servers a benchmark started in their own sessions) re-parent to us."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception as error:  # not Linux, or no prctl: per-benchmark cleanup still runs
        log(f"cannot become a subreaper ({error}); relying on each benchmark's own cleanup")


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def descendants(pid):
    result, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        for child in children_of(current):
            result.append(child)
            frontier.append(child)
    return result


def command_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def garage_pids():
    return {pid for pid in (int(e) for e in os.listdir("/proc") if e.isdigit())
            if command_of(pid).startswith("garage ") and " server" in command_of(pid)}


def reap_leftovers(grace=20, final=False):
    """Stops every process still below this suite (by pid). A Garage a benchmark started (it detaches,
    so it ends up here) is kept for the next benchmarks and stopped at the end unless BENCH_KEEP_GARAGE."""
    keep = set()
    if not final or os.environ.get("BENCH_KEEP_GARAGE"):
        keep = garage_pids()
    leftovers = [pid for pid in descendants(os.getpid()) if pid not in keep]
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in leftovers):
        _reap_zombies()
        time.sleep(0.2)
    for pid in leftovers:
        if _alive(pid):
            log(f"killing {pid} ({command_of(pid)[:80]})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    _reap_zombies()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap_zombies():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_benchmark(process):
    """SIGINT first (Python runs its atexit cleanup on KeyboardInterrupt), then SIGTERM, then SIGKILL."""
    for signum, wait in ((signal.SIGINT, 30), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


def on_signal(signum, frame):
    log(f"signal {signum}: stopping")
    if _running is not None:
        stop_benchmark(_running)
    reap_leftovers(final=True)
    sys.exit(128 + signum)


def run_benchmark(name, script, env, timeout, log_dir):
    global _running
    log_path = os.path.join(log_dir, f"{name}.log")
    started = time.time()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen([sys.executable, os.path.join(HERE, script)], env=env, cwd=h.ROOT,
                                   stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        _running = process
        status = None
        rusage = None
        while True:
            pid, wait_status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                process.returncode = os.waitstatus_to_exitcode(wait_status)
                rusage = usage
                status = "ok" if process.returncode == 0 else f"failed (exit {process.returncode})"
                break
            if time.time() - started > timeout:
                log(f"{name}: timeout after {timeout:.0f} s, stopping it")
                stop_benchmark(process)
                status = f"timeout ({timeout:.0f} s)"
                break
            time.sleep(0.5)
        _running = None
    reap_leftovers()
    seconds = time.time() - started
    tree = None
    if rusage is not None:
        # Everything the benchmark and its children used (servers, load generators, references);
        # not Garage, PostgreSQL or Redis, which are not its children.
        tree = {"cpu_seconds": rusage.ru_utime + rusage.ru_stime, "largest_peak_rss_mib": rusage.ru_maxrss / 1024}
    return {"status": status, "seconds": seconds, "log": os.path.relpath(log_path, h.ROOT), "tree": tree}


def parse_table(path):
    rows = []
    if not os.path.exists(path):
        return rows
    for line in open(path):
        match = ROW.match(line.strip())
        if match:
            figure, ours, ref, ratio, target, ok = match.groups()
            rows.append({"figure": figure, "coffer": ours, "reference": ref, "ratio": ratio, "target": target,
                         "pass": ok.lower() == "yes"})
    return rows


def fmt(value):
    if value is None:
        return "–"
    if isinstance(value, str):  # a benchmark's own table cell, formatted by it
        return value
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.4f}"


def processes_of(name, payload, run):
    """Per-process CPU-seconds and peak RSS, as far as the benchmark reports them."""
    rows = []
    for process, usage in (payload.get("processes") or {}).items():
        if usage:
            rows.append((name, process, usage.get("cpu_seconds"), usage.get("peak_rss_mib"), ""))
    if name.startswith("objects") and payload:
        rows.append((name, "coffer (B1/B2 transfers)", None, None,
                     f"{payload.get('coffer_cpu_seconds_per_gib', 0):.2f} CPU-s per GiB moved"))
        for label, rss in (payload.get("peak_rss") or {}).items():
            rows.append((name, f"coffer (B3 {label} upload)", None, rss.get("peak_mib"),
                         f"baseline {rss.get('baseline_mib', 0):.1f} MiB"))
    if run and run.get("tree"):
        tree = run["tree"]
        rows.append((name, "whole benchmark (all children, incl. wrk/curl/references)", tree["cpu_seconds"],
                     tree["largest_peak_rss_mib"], "peak = its largest single process"))
    return rows


def main():
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    become_subreaper()
    h.prepare()
    out_dir = os.path.join(h.WORK, "quick") if QUICK else h.RESULTS
    log_dir = os.path.join(h.WORK, "quick" if QUICK else "logs")  # logs never go to bench/results
    os.makedirs(out_dir, exist_ok=True)
    os.makedirs(log_dir, exist_ok=True)
    only = {n for n in os.environ.get("BENCH_ONLY", "").split(",") if n}
    skip = {n for n in os.environ.get("BENCH_SKIP", "").split(",") if n}
    started = time.time()
    runs = {}
    for name, script, full_env, quick_env, timeout, figures, rounds in BENCHMARKS:
        if (only and name not in only) or name in skip:
            log(f"{name} ({figures}): skipped")
            runs[name] = {"status": "skipped"}
            continue
        left = BUDGET - (time.time() - started)
        if left < 30:
            log(f"{name} ({figures}): no budget left")
            runs[name] = {"status": "not run (budget spent)"}
            continue
        env = {**os.environ, **(quick_env if QUICK else full_env), "BENCH_NO_BUILD": os.environ.get("BENCH_NO_BUILD", "1")}
        for key in ("BENCH_ROUNDS", "BENCH_RUNS", "BENCH_DURATION"):
            if os.environ.get(key):  # an explicit setting wins
                env[key] = os.environ[key]
        if QUICK:
            env["BENCH_RESULTS_DIR"] = out_dir
        limit = min(timeout, left)
        log(f"{name} ({figures}): running, timeout {limit:.0f} s, log {os.path.relpath(log_dir, h.ROOT)}/{name}.log")
        runs[name] = run_benchmark(name, script, env, limit, log_dir)
        log(f"{name}: {runs[name]['status']} in {runs[name]['seconds']:.0f} s")

    # Collect: this run's results where a benchmark ran, else the last full results (marked).
    collected, table_rows, process_rows = {}, [], []
    for name, script, full_env, quick_env, timeout, figures, rounds in BENCHMARKS:
        run = runs.get(name, {})
        fresh = run.get("status") == "ok"
        directory = out_dir if fresh else h.RESULTS
        json_path = os.path.join(directory, f"{name}.json")
        payload = json.load(open(json_path)) if os.path.exists(json_path) else {}
        rows = parse_table(os.path.join(directory, f"{name}.md"))
        source = "this run" if fresh else (f"earlier run {payload.get('when', '?')}" if payload else "no results")
        collected[name] = {"figures": figures, "order_swapped_rounds": rounds, "run": run, "source": source,
                           "rows": rows, "results": payload}
        for row in rows:
            table_rows.append({**row, "benchmark": name, "source": source})
        process_rows += processes_of(name if fresh else f"{name} (earlier run)", payload, run if fresh else None)

    mode = "quick" if QUICK else "full"
    latest = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "mode": mode, "machine": h.machine(),
              "seconds": time.time() - started, "benchmarks": collected, "rows": table_rows}
    with open(os.path.join(out_dir, "latest.json"), "w") as f:
        json.dump(latest, f, indent=2)

    lines = [f"Performance suite, {mode} run, {latest['when']} on {latest['machine']['cores']} cores "
             f"({latest['machine']['cpu']}), {latest['seconds'] / 60:.1f} min.", "",
             "| benchmark | figures | status | seconds | results from |", "|---|---|---|---|---|"]
    for name, entry in collected.items():
        run = entry["run"]
        lines.append(f"| {name} | {entry['figures']} | {run.get('status', '–')} | "
                     f"{run['seconds']:.0f} | {entry['source']} |" if "seconds" in run else
                     f"| {name} | {entry['figures']} | {run.get('status', '–')} | – | {entry['source']} |")
    lines += ["", "| figure | Coffer | reference | ratio | target | pass/fail |", "|---|---|---|---|---|---|"]
    for row in table_rows:
        mark = "" if row["source"] == "this run" else " (earlier run)"
        lines.append(f"| {row['figure']}{mark} | {fmt(row['coffer'])} | {fmt(row['reference'])} | {fmt(row['ratio'])} | "
                     f"{row['target']} | {'pass' if row['pass'] else 'FAIL'} |")
    lines += ["", "CPU-seconds and peak RSS per process, where the benchmarks report them:", "",
              "| benchmark | process | CPU-seconds | peak RSS (MiB) | note |", "|---|---|---|---|---|"]
    for name, process, cpu, rss, note in process_rows:
        lines.append(f"| {name} | {process} | {fmt(cpu)} | {fmt(rss)} | {note} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out_dir, "latest.md"), "w") as f:
        f.write(text)
    print(text)
    log(f"wrote {os.path.relpath(out_dir, h.ROOT)}/latest.md and latest.json")
    reap_leftovers(final=True)
    failed = [name for name, run in runs.items() if run.get("status") not in ("ok", "skipped")]
    if failed:
        log(f"did not complete: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    finally:
        if _running is not None:
            stop_benchmark(_running)
        reap_leftovers(final=True)
