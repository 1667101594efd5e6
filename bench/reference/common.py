# Shared by the PyTorch reference scripts of bench/: timing medians and peak-RSS readings, measured the same
# way as bench/common.ts does on the TypeScript side.
import statistics
import time


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
