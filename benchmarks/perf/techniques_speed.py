"""Warm analysis with five techniques applied, next to the plain analysis (the planner's inner loop).

Run: python benchmarks/perf/techniques_speed.py [--repeat 2000]
Llama-2-7B on an H100 SXM, batch 8, 1024 + 128 tokens: build the workload, apply the techniques in
stage order, estimate both phases. Plugins are loaded once, as the planner will.
"""

from __future__ import annotations

import argparse
import os
import tempfile

from _timing import per_call  # benchmarks/perf/_timing.py (this folder is on sys.path)

FIVE = (
    "weight-only-quant:bits=4,group_size=128",
    "kv-cache-quant",
    "fused-attention",
    "cuda-graphs",
    "speculative-decoding:draft_len=4,acceptance_rate=0.8,drafter=model,draft_cost_fraction=0.05",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()

    from llmeff.kb.api import open_kb
    from llmeff.roofline import estimate
    from llmeff.techniques.pipeline import apply_techniques, parse_technique
    from llmeff.workload.build import build_workload
    from llmeff.workload.request import WorkloadRequest

    with open_kb(os.path.join(tempfile.mkdtemp(prefix="llmeff-perf-"), "llmeff.db")) as kb:
        arch = kb.model("llama-2-7b").architecture()
        device = kb.hardware("h100-sxm-80gb")
    request = WorkloadRequest(batch=8, prompt_tokens=1024, output_tokens=128)
    chosen = [parse_technique(text) for text in FIVE]

    def plain() -> None:
        estimate(build_workload(arch, request), device)

    def with_five() -> None:
        estimate(apply_techniques(build_workload(arch, request), device, chosen), device)

    base, five = per_call(plain, args.repeat), per_call(with_five, args.repeat)
    print(f"plain analysis:               {base * 1e3:.3f} ms")
    print(f"with {len(chosen)} techniques applied:   {five * 1e3:.3f} ms ({five / base:.1f}x)")
    print("techniques: " + ", ".join(FIVE))


if __name__ == "__main__":
    main()
