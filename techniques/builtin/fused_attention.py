"""Fused attention (FlashAttention): the score matrix never goes through device memory.

The unfused baseline writes the ``S x S`` scores, reads and writes them in the softmax and reads
them again for the value product. Fused, one kernel reads Q, K and V and writes the output, and in
causal prefill it skips the blocks above the diagonal, computing S(S+1)/2 of the S^2 scores
(FlashAttention-2, arXiv 2307.08691, section 3.1.1). Decode attends one query row to every key:
no masked work to skip there, but the score round-trip is still gone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.techniques.builtin._tables import prefill_activation_peak, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.operators import OperatorTable

UNFUSED = ("qk_matmul", "softmax", "sv_matmul")


@dataclass(frozen=True)
class FusedAttentionParams(Params):
    causal_skip: bool = True  # skip the fully masked blocks of causal prefill


def fuse(table: OperatorTable, flops_factor: float) -> OperatorTable:
    """Replace every qk/softmax/sv triple by one fused row (same layers and context cap)."""
    names = list(table.names)
    starts = [i for i in range(len(names) - 2) if tuple(names[i:i + 3]) == UNFUSED]
    keep = np.ones(len(names), dtype=bool)
    columns = {c: getattr(table, c).copy() for c in ("flops_base", "flops_per_context", "activation_bytes_base",
                                                   "activation_bytes_per_context", "kv_bytes_base",
                                                   "kv_bytes_per_context")}
    for i in starts:
        qk, sm, sv = i, i + 1, i + 2
        for column in ("flops_base", "flops_per_context"):
            columns[column][qk] = (columns[column][qk] + columns[column][sm] + columns[column][sv]) * flops_factor
        # the softmax reads and writes the scores once each; qk wrote them and sv read them: all gone
        for column in ("activation_bytes_base", "activation_bytes_per_context"):
            columns[column][qk] = columns[column][qk] + columns[column][sv] - columns[column][sm]
        for column in ("kv_bytes_base", "kv_bytes_per_context"):
            columns[column][qk] = columns[column][qk] + columns[column][sv]
        keep[[sm, sv]] = False
        names[qk] = "fused_attention"
    index = np.flatnonzero(keep)
    text = {c: tuple(getattr(table, c)[i] for i in index) for c in ("kinds", "dtypes", "resources")}
    numeric = {c: (columns[c] if c in columns else getattr(table, c))[index]
               for c in ("layers", "flops_base", "flops_per_context", "weight_bytes", "activation_bytes_base",
                         "activation_bytes_per_context", "kv_bytes_base", "kv_bytes_per_context", "context_cap")}
    return OperatorTable(names=tuple(names[i] for i in index), **text, **numeric)


class FusedAttention(BaseTechnique):
    id = "fused-attention"
    stage = "system"
    order = -10  # fuses the unfused attention rows that chunking and prefix caching then rewrite
    summary = "FlashAttention-style fused attention: no score-matrix round-trip; causal prefill skips masked blocks."
    aliases = ("flash-attention",)
    Params = FusedAttentionParams

    def param_space(self, workload, hardware):
        return (FusedAttentionParams(),)

    def applicability(self, workload, hardware, params):
        if "qk_matmul" not in workload.prefill.table.names:
            return refuse("the workload has no unfused attention operators (already fused, or no attention)")
        return OK

    def rewrite(self, workload, hardware, params):
        s = workload.prompt_tokens
        # a sparse pattern already counts only the scores it computes: no masked half is left to skip
        sparse = any(a.startswith("sparse attention") for a in workload.assumptions)
        causal = (s + 1) / (2 * s) if params.causal_skip and not sparse else 1.0
        prefill = fuse(workload.prefill.table, causal)
        decode = fuse(workload.decode.table, 1.0)
        before = workload.memory.activation_bytes
        memory = replace(workload.memory, activation_bytes=prefill_activation_peak(workload, prefill))
        assumptions = tuple(a for a in workload.assumptions if not a.startswith("attention unfused"))
        new = with_tables(workload, prefill, decode, memory=memory,
                          assumptions=assumptions + ("attention fused: scores stay on chip",))
        return new, [
            "qk_matmul + softmax + sv_matmul -> fused_attention: the score matrix no longer goes through memory",
            f"causal prefill computes {causal:.3f} of the score square" if causal < 1.0 else
            "prefill keeps the scores the earlier rows count (no causal skip applied)",
            f"peak prefill activation {before / 1e6:.1f} MB -> {memory.activation_bytes / 1e6:.1f} MB",
        ]


PLUGIN = FusedAttention()
