"""Cold-start time of the CLI: wall time of whole processes, median of several runs.

Run: python benchmarks/perf/cold_start.py [--runs 15]
The database is built once before timing, so what is measured is the read path a user meets
on every command after the first.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "llmeff --help": [sys.executable, "-m", "llmeff.cli.app", "--help"],
    "llmeff techniques list": [sys.executable, "-m", "llmeff.cli.app", "techniques", "list"],
    "llmeff techniques show awq": [sys.executable, "-m", "llmeff.cli.app", "techniques", "show", "awq"],
    "llmeff hardware list": [sys.executable, "-m", "llmeff.cli.app", "hardware", "list"],
}


def time_command(argv: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="llmeff-perf-"))
    env = {**os.environ, "LLMEFF_HOME": str(home), "COLUMNS": "200"}
    try:
        start = time.perf_counter()
        subprocess.run(COMMANDS["llmeff techniques list"], env=env, stdout=subprocess.DEVNULL, check=True)
        print(f"first run (builds the database): {time.perf_counter() - start:.3f} s")
        floor = None
        for name, argv in COMMANDS.items():
            median = time_command(argv, env, args.runs)
            floor = floor or median
            print(f"{name:32s} median {median:.3f} s  ({median / floor:.1f}x the bare interpreter)")
    finally:
        shutil.rmtree(home)


if __name__ == "__main__":
    main()
