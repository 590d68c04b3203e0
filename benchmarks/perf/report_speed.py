"""Speed of `llmeff report` for 3 hardware x 5 technique combinations (18 cells with the baselines).

Run: python benchmarks/perf/report_speed.py
(a) the whole build in-process (database built, matplotlib imported), and its parts: the 18
    analyses, the registry comparison, the 9 figures;
(b) `llmeff report ... --out DIR --force` as a new process (what a user waits for);
(c) `llmeff report --check DIR` as a new process (a rebuild plus a byte comparison).
"""

from __future__ import annotations

import os
import sys
import tempfile

from _timing import per_call, per_process  # benchmarks/perf/_timing.py (this folder is on sys.path)

HARDWARE = ("a100-sxm4-80gb", "h100-sxm-80gb", "rtx-4090-24gb")
COMBINATIONS = ("awq", "flash-attention", "kv-cache-quant:bits=8", "smoothquant", "flash-attention + paged-kv")



def main() -> None:
    from llmeff.report import views
    from llmeff.report.build import build_report
    from llmeff.report.cells import analysis_cells, registry_points
    from llmeff.report.request import Combination, ReportRequest
    from llmeff.workload.request import WorkloadRequest

    home = tempfile.mkdtemp(prefix="llmeff-perf-")
    db, out = os.path.join(home, "llmeff.db"), os.path.join(home, "report")
    request = ReportRequest(("llama-2-7b",), HARDWARE, tuple(Combination.parse(c) for c in COMBINATIONS),
                            WorkloadRequest(8, 1024, 256))
    build_report(request, out, db=db)  # builds the database, imports matplotlib
    whole = per_call(lambda: build_report(request, out, db=db, force=True), 3)
    cells, _ = analysis_cells(request, db, lambda: None)
    analyses = per_call(lambda: analysis_cells(request, db, lambda: None), 3)
    registry = per_call(lambda: registry_points(["llama-2-7b"], set(HARDWARE), db, calibrated=True), 3)
    figures = per_call(lambda: (views.roofline_figures(cells), views.breakdown_figures(cells),
                                views.comparison_figure(cells), views.memory_figure(cells)), 2)
    print(f"(a) build in-process: {whole:.2f} s; 18 analyses {analyses:.2f} s, registry {registry:.2f} s, "
          f"8 figures without predicted-vs-measured {figures:.2f} s")
    cli = [sys.executable, "-m", "llmeff.cli.app", "--db", db, "report", "--model", "llama-2-7b", "--batch", "8",
           "--prompt-tokens", "1024", "--output-tokens", "256"]
    cli += [x for h in HARDWARE for x in ("--hardware", h)] + [x for c in COMBINATIONS for x in ("-t", c)]
    print(f"(b) `llmeff report` process:          {per_process(cli + ['--out', out, '--force'], 3):.2f} s")
    check = [sys.executable, "-m", "llmeff.cli.app", "--db", db, "report", "--check", out]
    print(f"(c) `llmeff report --check` process:  {per_process(check, 3):.2f} s")


if __name__ == "__main__":
    main()
