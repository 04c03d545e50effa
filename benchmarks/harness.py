"""Side-by-side step-time ratios (DESIGN.md section 6), framework-neutral.

`compare(candidates, baseline)` warms every function up, then runs interleaved
rounds (each round times every function once, in rotating order), and reports
per candidate the median of the per-round ratios candidate/baseline, plus the
ratio of the baseline to a memory-traffic floor measured in-process with a numpy
streaming triad. Ratios are the result; absolute times on shared machines are noise.
"""
import json
import platform
import statistics
import time

import numpy as np


def stream_bandwidth(n=20_000_000, repeats=5):
    """Bytes per second of a numpy triad `a = b + s * c` (3 float32 streams)."""
    b = np.ones(n, np.float32)
    c = np.ones(n, np.float32)
    a = np.empty_like(b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.multiply(c, np.float32(1.5), out=a)
        np.add(a, b, out=a)
        best = min(best, time.perf_counter() - start)
    # multiply: read c, write a; add: read a, read b, write a -> 5 streams.
    return 5 * 4 * n / best


def _time(fn, sync):
    start = time.perf_counter()
    sync(fn())
    return time.perf_counter() - start


def compare(functions, baseline, rounds=30, warmup=3, sync=lambda result: result):
    """Median paired ratios of each function to `baseline`.

    Args:
        functions: `{name: zero-argument callable}`, including `baseline`.
        baseline: the name of the reference function.
        rounds: interleaved timing rounds after warm-up.
        warmup: untimed calls of every function first.
        sync: applied to each result to wait for it (e.g. `.numpy()`).

    Returns:
        `{name: {"median_s", "ratio", "ratio_iqr"}}`.
    """
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            sync(functions[name]())
    times = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            times[name].append(_time(functions[name], sync))
    result = {}
    for name in names:
        ratios = [a / b for a, b in zip(times[name], times[baseline])]
        q = statistics.quantiles(ratios, n=4)
        result[name] = {"median_s": statistics.median(times[name]),
                        "ratio": statistics.median(ratios), "ratio_iqr": [q[0], q[2]]}
    return result


def floor_ratio(seconds, params, bytes_per_param, bandwidth):
    """Time over the memory-traffic floor `params * bytes_per_param / bandwidth`."""
    return seconds / (params * bytes_per_param / bandwidth)


def write_json(path, payload):
    payload = dict(payload, machine=platform.platform(), processor=platform.processor())
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
