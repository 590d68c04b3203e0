"""Speed of `llmeff bench compare` over the whole shipped registry (622 rows), and of calibration.

Run: python benchmarks/perf/bench_compare_speed.py
(a) compare in-process with the database built (every row prepared: names, labels, techniques
    applied, then predicted), uncalibrated and with a stored calibration;
(b) `llmeff bench compare --json` as a new process, database built (what a user waits for);
(c) `llmeff bench calibrate` and `--holdout` (leave-one-source-out: one fit per source) as processes.
"""

from __future__ import annotations

import os
import sys
import tempfile

from _timing import per_call, per_process  # benchmarks/perf/_timing.py (this folder is on sys.path)



def main() -> None:
    from llmeff.benchmarks.api import compare_measurements

    db = os.path.join(tempfile.mkdtemp(prefix="llmeff-perf-"), "llmeff.db")
    result = compare_measurements(db, calibrated=False)  # builds the database
    print(f"registry: {len(result.predictions)} rows predicted, {len(result.unpredictable)} listed with a reason")
    print(f"(a) compare in-process, uncalibrated:      {per_call(lambda: compare_measurements(db), 3):.3f} s")
    cli = [sys.executable, "-m", "llmeff.cli.app", "--db", db]
    print(f"(b) `llmeff bench compare --json` process: {per_process(cli + ['bench', 'compare', '--json'], 5):.3f} s")
    print(f"(c) `llmeff bench calibrate` process:      {per_process(cli + ['bench', 'calibrate'], 3):.3f} s")
    print(f"    `llmeff bench calibrate --holdout`:    {per_process(cli + ['bench', 'calibrate', '--holdout'], 1):.3f} s")
    print(f"(a') compare in-process, calibrated:       {per_call(lambda: compare_measurements(db), 3):.3f} s")
    print(f"(b') `llmeff bench compare` calibrated:    {per_process(cli + ['bench', 'compare', '--json'], 5):.3f} s")


if __name__ == "__main__":
    main()
