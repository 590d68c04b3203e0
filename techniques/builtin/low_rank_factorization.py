"""Low-rank factorization (SVD-LLM, ASVD, LoSparse): a k x m weight becomes k x r and r x m factors.

Each factored projection runs as two back-to-back GEMMs, modelled as its one row (the row keeps
its name, so later plugins still find q_proj or down_proj): FLOPs and weight bytes scale by
r (k + m) / (k m), and the n x r intermediate is written and read back through memory (two more
activation passes of r per token). The rank comes from ``param_ratio``, the kept fraction of the
matrix's parameters, r = floor(param_ratio k m / (k + m)) as SVD-LLM's code computes it
(AIoT-MLSys-Lab/SVD-LLM, SVDLLM.py); or from ``rank`` directly; or from ``rank_ratio`` = r / min(k, m).
A rank that stores at least k m parameters saves nothing and is refused.

``sparse_density`` adds LoSparse's sparse residual (arXiv 2306.11222): that fraction of the k x m
weights kept in a CSR format (a 16-bit column index per value and a 32-bit offset per row, first
principles), computed by a sparse kernel alongside the factors (2 FLOPs per kept weight and token).

Not modelled: per-layer ranks (ASVD's and SVD-LLM V2's sensitivity-based allocation: give the
average ``param_ratio``), ASVD's caching of the K/V projections' rank-r intermediate instead of
K and V (it needs a per-read re-projection that the operator table has no row for), and the
second kernel launch of each factored projection (the roofline counts one launch per row).
Quantize before factorizing: the weight precision becomes a label ("fp16 low-rank"), so
weight-only-quant, which sizes weights from the unfactored parameter count, refuses afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._compression_helpers import gemm_shapes, memory_delta, per_row
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

GROUPS = {
    "attention": ("q_proj", "k_proj", "v_proj", "o_proj", "q_a_proj", "q_b_proj", "kv_a_proj"),
    "mlp": ("gate_proj", "up_proj", "down_proj", "expert_gate", "expert_up", "expert_down", "shared_gate",
            "shared_up", "shared_down"),
}
GROUPS["all"] = GROUPS["attention"] + GROUPS["mlp"]
INDEX_BITS, ROW_POINTER_BITS = 16, 32  # CSR: column index per kept value, offset per row


@dataclass(frozen=True)
class LowRankParams(Params):
    # SVD-LLM's quick example compresses LLaMA-7B at a 20% compression ratio (AIoT-MLSys-Lab/SVD-LLM README)
    param_ratio: float = 0.8
    rank: int = 0  # a fixed rank for every factored projection (overrides param_ratio)
    rank_ratio: float = 0.0  # r / min(k, m) (overrides param_ratio)
    projections: str = "all"  # "attention", "mlp", "all" or names joined by '+': "q_proj+k_proj"
    sparse_density: float = 0.0  # LoSparse's sparse residual: kept fraction of each k x m weight

    def validate(self) -> None:
        if not 0.0 < self.param_ratio < 1.0:
            raise InvalidInputError(f"must be a kept fraction of parameters in (0, 1), got {self.param_ratio}",
                                    field="param_ratio")
        if self.rank < 0:
            raise InvalidInputError(f"must be a positive rank (or 0 for param_ratio), got {self.rank}", field="rank")
        if not 0.0 <= self.rank_ratio <= 1.0:
            raise InvalidInputError(f"must be in (0, 1] (or 0 for param_ratio), got {self.rank_ratio}",
                                    field="rank_ratio")
        if self.rank and self.rank_ratio:
            raise InvalidInputError("give rank or rank_ratio, not both", field="rank")
        unknown = [n for n in self.names() if n not in GROUPS["all"]]
        if unknown or not self.names():
            raise InvalidInputError(f"unknown projection '{(unknown or [''])[0]}' (attention, mlp, all, or "
                                    f"{'+'.join(GROUPS['all'])})", field="projections")
        if not 0.0 <= self.sparse_density < 1.0:
            raise InvalidInputError(f"must be in [0, 1), got {self.sparse_density}", field="sparse_density")

    def names(self) -> tuple[str, ...]:
        if self.projections in GROUPS:
            return GROUPS[self.projections]
        return tuple(filter(None, (p.strip() for p in self.projections.split("+"))))

    def rank_for(self, k: int, m: int) -> int:
        if self.rank:
            return self.rank
        if self.rank_ratio:
            return max(1, int(self.rank_ratio * min(k, m)))
        return max(1, int(k * m * self.param_ratio / (k + m)))


class LowRankFactorization(BaseTechnique):
    id = "low-rank-factorization"
    stage = "model"
    summary = "Replaces k x m weights by rank-r factors: FLOPs and weight bytes r(k+m)/(km) per factored projection."
    aliases = ("svd", "low-rank")
    Params = LowRankParams

    def param_space(self, workload, hardware):
        P = LowRankParams
        return (P(), P(param_ratio=0.6), P(param_ratio=0.8, projections="mlp"), P(param_ratio=0.6, sparse_density=0.1))

    def _plan(self, workload, params) -> dict[str, tuple[int, int, int]]:
        shapes = gemm_shapes(workload.architecture)
        return {n: (*shapes[n], params.rank_for(*shapes[n])) for n in params.names() if n in shapes}

    def applicability(self, workload, hardware, params):
        arch = workload.architecture
        if arch is None or arch.ssm:
            return refuse("factorizing needs the attention/MLP GEMM shapes of a transformer architecture")
        if any(a.id == self.id for a in workload.applied):
            return refuse("the weights are already factorized")
        plan = self._plan(workload, params)
        if not plan:
            return refuse(f"the model has none of the projections '{params.projections}'")
        bits = 8.0 * BYTES_PER_ELEMENT.get(workload.weight_dtype.split()[0], 2)
        for name, (k, m, r) in plan.items():
            if _weight_factor(k, m, r, params.sparse_density, bits) >= 1.0:
                return refuse(f"rank {r} for {name} ({k}x{m}) keeps {r * (k + m):,} of {k * m:,} weights"
                              + (" plus the sparse residual" if params.sparse_density else "") + ": no saving")
        return OK

    def rewrite(self, workload, hardware, params):
        plan = self._plan(workload, params)
        bits = 8.0 * BYTES_PER_ELEMENT.get(workload.weight_dtype.split()[0], 2)
        weight = {n: _weight_factor(k, m, r, params.sparse_density, bits) for n, (k, m, r) in plan.items()}
        flops = {n: r * (k + m) / (k * m) + params.sparse_density for n, (k, m, r) in plan.items()}
        # the intermediate (n x r) is written and read back: 2r per token against the k + m (or k) of in/out
        through = {n: 2.0 * r / (k + m) for n, (k, m, r) in plan.items()}
        through_kv = {n: 2.0 * r / k for n, (k, m, r) in plan.items()}

        def rewrite_table(table):
            mask = [kind == "gemm" for kind in table.kinds]
            extra = [kv if b > 0 else a for a, kv, b in
                     zip(per_row(table, through, 0.0), per_row(table, through_kv, 0.0), table.kv_bytes_base)]
            act = [1.0 + (e if m else 0.0) for e, m in zip(extra, mask)]
            f = [v if m else 1.0 for v, m in zip(per_row(table, flops), mask)]
            w = [v if m else 1.0 for v, m in zip(per_row(table, weight), mask)]
            return table.replace(flops_base=table.flops_base * f, flops_per_context=table.flops_per_context * f,
                                 weight_bytes=table.weight_bytes * w,
                                 activation_bytes_base=table.activation_bytes_base * act,
                                 activation_bytes_per_context=table.activation_bytes_per_context * act)

        before = workload.memory.weight_bytes
        weight_bytes = before + memory_delta(workload, weight)
        # a label, not a plain precision: plugins that size weights from the architecture's parameter
        # count (weight-only-quant) would miscount factored weights, so they refuse after this one
        new = with_tables(workload, rewrite_table(workload.prefill.table), rewrite_table(workload.decode.table),
                          memory=replace(workload.memory, weight_bytes=weight_bytes),
                          weight_dtype=f"{workload.weight_dtype} low-rank")
        ranks = ", ".join(f"{n} {k}x{m} r={r}" for n, (k, m, r) in plan.items())
        return new, [
            f"factored (rank r): {ranks}",
            "FLOPs and weight bytes x r(k+m)/(km)" + (f" plus a {params.sparse_density:.0%} sparse residual"
                                                      if params.sparse_density else "")
            + "; the rank-r intermediate goes through memory",
            f"weight memory {before / 1e9:.2f} GB -> {weight_bytes / 1e9:.2f} GB",
        ]


def _weight_factor(k: int, m: int, r: int, density: float, bits: float) -> float:
    """Stored bytes per dense byte: the two factors plus the optional CSR residual."""
    sparse = density * (bits + INDEX_BITS) / bits + (ROW_POINTER_BITS / (k * bits) if density else 0.0)
    return r * (k + m) / (k * m) + sparse


PLUGIN = LowRankFactorization()
