"""Timing helper shared by the benchmark scripts in this folder (run them as scripts)."""

from __future__ import annotations

import statistics
import subprocess
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


def per_process(argv: list[str], runs: int) -> float:
    """Median wall time of ``runs`` runs of the command ``argv`` (output discarded), in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
