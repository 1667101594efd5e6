# Shared by the PyTorch reference scripts of bench/: PyTorch at its best (best_torch), timing medians,
# peak-RSS readings, and the sampling protocol of bench/harness.ts (serve), measured the same way as
# bench/sample.ts does on the TypeScript side.
#
# The environment half of "at its best" (OMP/OpenBLAS threads, OPENBLAS_CORETYPE pinned or left to
# OpenBLAS's auto-detection, MALLOC_MMAP_MAX_=0 and the other glibc malloc settings) is set by the parent
# (bench/common.ts pythonEnv); the in-process half is here.
import json
import os
import statistics
import sys
import time

import torch


def best_torch(threads, seed=0):
    """Thread count, flushed denormals and a seed: what a competent user sets for CPU inference."""
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)


def median_ms(fn, reps=10, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        s = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - s) * 1e3)
    return statistics.median(ts)


def reset_peak_rss():
    """Resets VmHWM (the kernel's peak RSS) so that the next reading covers only what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def status_mb(field):
    """A memory field of /proc/self/status (VmHWM, VmRSS) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return None


# --- the sampling protocol (bench/harness.ts): one JSON request per stdin line, one JSON reply per line ---

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
REPLY_PREFIX = "@@bench "  # bench/sample.ts REPLY_PREFIX: anything else on stdout is not a reply


def _busy_jiffies():
    """All CPUs' busy time (user nice system irq softirq steal; not idle, iowait) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]


def _self_jiffies_and_faults():
    """This process's utime + stime (all threads) and minor faults, from /proc/self/stat."""
    with open("/proc/self/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state): minflt = field 10, utime/stime = fields 14/15
    return int(rest[11]) + int(rest[12]), int(rest[7])


def _sample(fn, reps, warm=0):
    """Each call timed with its minor page faults, own CPU and the CPU that other processes took meanwhile
    (after `warm` untimed calls that re-warm caches)."""
    for _ in range(warm):
        fn()
    out = []
    for _ in range(reps):
        b0, (s0, f0) = _busy_jiffies(), _self_jiffies_and_faults()
        t0 = time.perf_counter()
        fn()
        wall = (time.perf_counter() - t0) * 1e3
        b1, (s1, f1) = _busy_jiffies(), _self_jiffies_and_faults()
        own = (s1 - s0) * TICK_MS
        out.append({"ms": wall, "faults": f1 - f0, "selfCpuMs": own, "othersCpuMs": (b1 - b0) * TICK_MS - own})
    return out


def serve(factories):
    """
    Answers bench/harness.ts on stdin/stdout. factories: case id → (spec → zero-argument callable running one
    sample of the case, its setup and warm-up done). Requests: {"op": "setup", "case", "spec", "threads",
    "warmup"}, {"op": "sample", "reps", "warm"}, {"op": "exit"}; replies are REPLY_PREFIX + one JSON object
    per line.
    """
    fn = None
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "setup":
                best_torch(req["threads"])
                t0 = time.perf_counter()
                fn = factories[req["case"]](req["spec"])
                for _ in range(req.get("warmup", 1)):
                    fn()
                reply = {"setupMs": (time.perf_counter() - t0) * 1e3, "rssMb": status_mb("VmRSS"), "info": info()}
            elif op == "sample":
                reply = {"samples": _sample(fn, req["reps"], req.get("warm", 0))}
            elif op == "exit":
                reply = {"peakRssMb": status_mb("VmHWM"), "rssMb": status_mb("VmRSS")}
            else:
                reply = {"error": f"unknown op {op}"}
        except Exception as e:  # reported to the parent, which prints it and drops this engine
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(REPLY_PREFIX + json.dumps(reply) + "\n")
        sys.stdout.flush()
        if op == "exit":
            return


def info():
    """What this PyTorch runs with: version, threads, OpenBLAS core pin, malloc settings."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS_", "MALLOC_", "OMP_"))}
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "env": env}
