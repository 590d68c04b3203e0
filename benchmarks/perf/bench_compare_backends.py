"""`llmeff bench compare` over the shipped registry (622 rows) on SQLite and on PostgreSQL, in one run.

Run: python benchmarks/perf/bench_compare_backends.py [--url postgresql+psycopg://user:pw@host/db]
(the URL defaults to $LLMEFF_TEST_POSTGRES_URL, then $LLMEFF_DATABASE_URL; the database it names is
built if empty). Both databases are built before timing:
(a) compare in-process (read the registry, prepare and predict every row), uncalibrated;
(b) `llmeff bench compare --json` as a new process (what a user waits for), median of 5;
(c) `llmeff bench list --json` as a new process: the read path alone, median of 5.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from _timing import per_call, per_process  # benchmarks/perf/_timing.py (this folder is on sys.path)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default=os.environ.get("LLMEFF_TEST_POSTGRES_URL") or
                        os.environ.get("LLMEFF_DATABASE_URL"))
    args = parser.parse_args()
    if not args.url:
        parser.error("no PostgreSQL URL: pass --url or set LLMEFF_TEST_POSTGRES_URL")

    from llmeff.backend import mask_url
    from llmeff.benchmarks.api import compare_measurements
    from llmeff.db import ensure_database

    targets = {"sqlite": os.path.join(tempfile.mkdtemp(prefix="llmeff-perf-"), "llmeff.db"), "postgresql": args.url}
    flags = {"sqlite": ["--db", targets["sqlite"]], "postgresql": ["--db-url", args.url]}
    for name, target in targets.items():
        ensure_database(target)
        shown = mask_url(target) if name == "postgresql" else target
        rows = compare_measurements(target, calibrated=False)
        print(f"{name}: {shown} ({len(rows.predictions)} rows predicted, {len(rows.unpredictable)} with a reason)")
    for name, target in targets.items():
        cli = [sys.executable, "-m", "llmeff.cli.app", *flags[name]]
        print(f"{name:10} (a) compare in-process:            {per_call(lambda: compare_measurements(target, calibrated=False), 3):.3f} s")
        print(f"{name:10} (b) `llmeff bench compare --json`: {per_process(cli + ['bench', 'compare', '--json'], 5):.3f} s")
        print(f"{name:10} (c) `llmeff bench list --json`:    {per_process(cli + ['bench', 'list', '--json'], 5):.3f} s")


if __name__ == "__main__":
    main()
