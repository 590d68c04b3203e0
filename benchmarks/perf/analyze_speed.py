"""Speed of the roofline cost model: (a) one warm analysis, (b) a whole generation, (c) a cold CLI run.

Run: python benchmarks/perf/analyze_speed.py [--repeat 2000]
(a) builds the workload of Llama-2-7B (batch 8, 1024 + 128 tokens) and estimates both phases, all
    operators, in-process with the model and device already loaded;
(b) the same request's whole generation: prefill plus every one of the 127 decode steps, once in
    closed form (what llmeff does) and once by evaluating each step, for comparison;
(c) `llmeff analyze` as a new process (database already built).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _timing import per_call  # benchmarks/perf/_timing.py (this folder is on sys.path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    from llmeff.kb.api import open_kb
    from llmeff.roofline import decode_at, estimate
    from llmeff.workload.build import build_workload
    from llmeff.workload.request import WorkloadRequest

    home = tempfile.mkdtemp(prefix="llmeff-perf-")
    db = os.path.join(home, "llmeff.db")
    with open_kb(db) as kb:
        arch = kb.model("llama-2-7b").architecture()
        device = kb.hardware("a100-sxm4-80gb")
    request = WorkloadRequest(batch=8, prompt_tokens=1024, output_tokens=128)

    def warm() -> None:
        estimate(build_workload(arch, request), device)

    workload = build_workload(arch, request)

    def generation_closed_form() -> None:
        estimate(workload, device)

    def generation_step_by_step() -> None:
        sum(decode_at(workload, device, c).time_s for c in range(1025, 1024 + 128))

    print(f"(a) warm analysis, build + both phases:  {per_call(warm, args.repeat) * 1e3:.3f} ms")
    print(f"(b) whole generation, closed form:        {per_call(generation_closed_form, args.repeat) * 1e3:.3f} ms")
    print(f"    whole generation, step by step:       {per_call(generation_step_by_step, max(1, args.repeat // 50)) * 1e3:.3f} ms")
    argv = [sys.executable, "-m", "llmeff.cli.app", "--db", db, "analyze", "--model", "llama-2-7b",
            "--hardware", "a100-sxm4-80gb", "--batch", "8", "--prompt-tokens", "1024", "--output-tokens", "128"]
    cold = []
    for _ in range(7):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        cold.append(time.perf_counter() - start)
    print(f"(c) cold `llmeff analyze` process:        {statistics.median(cold):.3f} s")


if __name__ == "__main__":
    main()
