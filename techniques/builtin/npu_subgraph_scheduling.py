"""Out-of-order subgraph scheduling (mllm-NPU, arXiv 2407.05858): the NPU's INT8 subgraphs and the
CPU/GPU's float subgraphs of different prompt chunks run at the same time.

mllm-NPU splits the prompt into chunks and dispatches every ready subgraph to its processor out of
order, filling the bubbles an in-order run leaves. The plugin sets the prefill's
``overlap_resources``: the roofline then takes the prefill time as the largest per-resource total
instead of their sum. That is the schedule's lower bound, max(total NPU time, total CPU/GPU time),
reached when there are enough chunks to keep both busy; the critical path through the chunk x
block dependency graph (which a short prompt of one chunk exposes) is not modelled, and neither is
the contention of the two processors for the shared memory bandwidth (each row is timed against
the whole bandwidth). Decode is unchanged (one token leaves nothing to overlap across chunks).
It needs rows on two processors, which npu-outlier-offload creates: apply that plugin first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmeff.techniques.builtin._systems_helpers import LINKS, order_problem
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse


@dataclass(frozen=True)
class NpuSubgraphParams(Params):
    """No settings: the schedule's bound follows from the rows."""


class NpuSubgraphScheduling(BaseTechnique):
    id = "npu-subgraph-scheduling"
    stage = "system"
    order = 10  # overlaps the processors that npu-outlier-offload put rows on
    summary = "mllm-NPU out-of-order subgraphs: prefill takes the busiest processor's time, not the sum."
    Params = NpuSubgraphParams

    def param_space(self, workload, hardware):
        return (NpuSubgraphParams(),)

    def applicability(self, workload, hardware, params):
        problem = order_problem(workload, self.id, ())
        if problem:
            return refuse(problem)
        processors = sorted({r for r in workload.prefill.table.resources if r not in LINKS})
        if len(processors) < 2:
            return refuse(f"the prefill runs on one processor only ({', '.join(processors) or 'none'}): apply "
                          "npu-outlier-offload first (list it before npu-subgraph-scheduling)")
        if workload.prefill.overlap_resources:
            return refuse("the prefill's resources already overlap")
        return OK

    def rewrite(self, workload, hardware, params):
        processors = sorted({r for r in workload.prefill.table.resources if r not in LINKS})
        new = replace(workload, prefill=replace(workload.prefill, overlap_resources=True))
        return new, [
            f"prefill rows on {', '.join(processors)} overlap across chunks: the prefill takes the largest "
            "per-resource time (the out-of-order schedule's lower bound)",
        ]


PLUGIN = NpuSubgraphScheduling()
