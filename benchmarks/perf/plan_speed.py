"""Speed of a full planner search: Llama-2-70B on four A100s, exhaustive up to 10,000 candidates.

Run: python benchmarks/perf/plan_speed.py
Prints the in-process time (database built, plugins loaded) and the cold time of the same
`llmeff plan --search exhaustive` as a new process, with the number of candidates evaluated.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

ARGS = ["plan", "--model", "llama-2-70b", "--hardware", "a100-sxm4-80gb", "--devices", "4", "--batch", "16",
        "--prompt-tokens", "2048", "--output-tokens", "256", "--search", "exhaustive", "--max-candidates", "10000",
        "--json"]


def main() -> None:
    from llmeff.planner.request import PlanRequest
    from llmeff.planner.search import plan
    from llmeff.workload.request import WorkloadRequest

    db = os.path.join(tempfile.mkdtemp(prefix="llmeff-perf-"), "llmeff.db")
    request = PlanRequest(hardware="a100-sxm4-80gb", model="llama-2-70b", devices=4, search="exhaustive",
                          max_candidates=10000, db=db,
                          workload=WorkloadRequest(batch=16, prompt_tokens=2048, output_tokens=256))
    plan(request)  # builds the database and loads the plugins
    start = time.perf_counter()
    result = plan(request)
    print(f"in-process exhaustive search: {time.perf_counter() - start:.2f} s, {result.evaluated} candidates")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "llmeff.cli.app", "--db", db, *ARGS], capture_output=True,
                          text=True, check=True)
    evaluated = json.loads(done.stdout)["evaluated"]
    print(f"cold `llmeff plan --search exhaustive`: {time.perf_counter() - start:.2f} s, {evaluated} candidates")


if __name__ == "__main__":
    main()
