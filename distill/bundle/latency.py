"""End-to-end latency: whole requests (tokenizer, model, labels) through a classifier's Python API,
several classifiers timed warm in one process, in blocks rotated across them.

    times = rotated_latency({"cnn": bundle.predict, "teacher-int8": teacher.predict}, texts)
    times["cnn"]["median_ms"], times["cnn"]["p90_ms"]

On a loaded machine the speed drifts over seconds; timing system A's requests, then B's, would
charge the drift to one of them. Here every system serves one block of requests in turn (A, B, C,
A, B, C, ...), so drift falls on all alike and their ratios hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np


def rotated_latency(systems: dict[str, Callable[[list], object]], texts: Sequence, batch: int = 1,
                    requests: int = 500, block: int = 100, warmup: int = 10) -> dict[str, dict]:
    """{name: {median_ms, p90_ms, requests, batch, rows_per_s}}: each system gets `requests` calls of
    `batch` texts each (cycling through `texts`), in blocks of `block` calls rotated across systems;
    every system first serves `warmup` calls that are not timed."""
    if not texts:
        raise ValueError("no texts to time")
    n = len(texts)

    def request(i: int) -> list:
        start = (i * batch) % n
        return [texts[(start + j) % n] for j in range(batch)]

    for fn in systems.values():
        for i in range(warmup):
            fn(request(i))
    times: dict[str, list[float]] = {name: [] for name in systems}
    done = 0
    while done < requests:
        size = min(block, requests - done)
        for name, fn in systems.items():  # the same requests for every system, in the same order
            for i in range(done, done + size):
                x = request(i)
                t0 = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t0)
        done += size
    out = {}
    for name, ts in times.items():
        ms = 1e3 * np.asarray(ts)
        median = float(np.median(ms))
        out[name] = {"median_ms": round(median, 4), "p90_ms": round(float(np.percentile(ms, 90)), 4),
                     "requests": len(ts), "batch": batch, "rows_per_s": round(1e3 * batch / median, 1)}
    return out
