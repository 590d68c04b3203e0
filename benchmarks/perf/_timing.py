"""Timing helper shared by the benchmark scripts in this folder (run them as scripts)."""

from __future__ import annotations

import statistics
import time


def per_call(fn, repeat: int) -> float:
    """Median over 5 batches of ``repeat`` calls, in seconds per call."""
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        samples.append((time.perf_counter() - start) / repeat)
    return statistics.median(samples)
