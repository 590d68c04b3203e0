"""Kernel fusion of element-wise operators (FasterTransformer, TensorRT-LLM, torch.compile, TVM/MLC-LLM).

Two fusions, each what the engines cited in the knowledge base do (entries kernel-fusion-graph-opt,
tensorrt-llm-engine, torch-compile, mlc-llm-tvm-compilation):

1. ``add_norm``: each residual add runs in one kernel with the norm that follows it (the next
   sub-layer's pre-norm). FasterTransformer's ``invokeGeneralAddBiasResidualPreLayerNorm``
   (src/fastertransformer/kernels/layernorm_kernels.cu: "output <- output + bias + residual;
   output_norm <- LN(output)"), vLLM's ``fused_add_rms_norm`` (csrc/layernorm_kernels.cu), and
   TorchInductor, which fuses point-wise ops into the reduction that consumes them. The fused kernel
   reads the branch output and the residual and writes the new residual and the normed activation:
   the norm's read of the freshly written residual is gone (the residual itself must still be written,
   the next add reads it). The ``residual_add`` row disappears into ``norms`` (its FLOPs move there).
2. ``gemm_epilogue``: the MLP activation (SiLU x up for gated MLPs, GELU otherwise; the routed
   experts' too) runs in the epilogue of the GEMM producing its input: TensorRT-LLM's fused gated MLP
   (``gemm_swiglu`` in tensorrt_llm/layers/mlp.py), cuDNN's GEMM + SwiGLU and grouped GEMM + SwiGLU,
   cuBLASLt's bias + GELU epilogue, and TVM's rule that element-wise operators fuse onto the output of
   "complex-out-fusable" operators (arXiv 1802.04799, section 3; TVM tags dense/matmul so). The
   ``mlp_act``/``expert_act`` rows disappear; their FLOPs move to the up-projection; the gate and up
   outputs no longer go through memory (only the activated product is written, by the up-projection
   row). torch.compile's default mode keeps cuBLAS GEMMs, whose epilogues it cannot change: there the
   activation is one point-wise kernel, which the baseline already counts as one row, so torch.compile
   takes ``gemm_epilogue=false``; so does FasterTransformer, whose FFN runs ``invokeGenericActivation``
   as its own kernel between the two GEMMs (src/fastertransformer/layers/FfnLayer.cc).

Removing a row also removes its kernel launch. Norms are not fused into the GEMM that follows them
(none of the cited engines does; the norm needs the whole hidden row first), nor is the final norm.
Attention fusion is the fused-attention plugin's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._tables import prefill_activation_peak, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable

# activation row -> (GEMM that absorbs it, GEMM whose output write disappears when gated)
ACTIVATIONS = {"mlp_act": ("up_proj", "gate_proj"), "expert_act": ("expert_up", "expert_gate")}


@dataclass(frozen=True)
class KernelFusionParams(Params):
    add_norm: bool = True
    gemm_epilogue: bool = True

    def validate(self) -> None:
        if not (self.add_norm or self.gemm_epilogue):
            raise InvalidInputError("nothing to fuse: enable add_norm or gemm_epilogue", field="add_norm")


def _preceding(names: list[str], index: int, name: str) -> int | None:
    for j in range(index - 1, -1, -1):
        if names[j] == name:
            return j
    return None


def fuse(table: OperatorTable, *, arch, add_norm: bool, gemm_epilogue: bool) -> OperatorTable:
    """The table with the chosen fusions applied (new arrays; the input is untouched)."""
    names = list(table.names)
    cols = {c: getattr(table, c).copy() for c in NUMERIC_COLUMNS}
    keep = np.ones(len(names), dtype=bool)
    adds = 1 if arch.parallel_attn_mlp or arch.ssm else 2  # residual adds per layer (as build.py counts)
    pairs = min(adds, arch.norms_per_layer)  # each add feeds the next sub-layer's (or layer's) pre-norm
    for i, name in enumerate(names):
        if add_norm and name == "residual_add":
            norm = _preceding(names, i, "norms")  # the same layer group's norms row
            if norm is None:
                continue
            share = pairs / adds
            for c in ("flops_base", "flops_per_context"):
                cols[c][norm] += share * cols[c][i]
                cols[c][i] *= 1 - share
            # an add moves 3 elements per element (2 reads, 1 write); fused, the norm's read of the sum goes
            for c in ("activation_bytes_base", "activation_bytes_per_context"):
                moved = share * cols[c][i]
                cols[c][norm] += moved - moved / 3
                cols[c][i] -= moved
            keep[i] = pairs < adds
        elif gemm_epilogue and name in ACTIVATIONS:
            absorb, gate = (_preceding(names, i, n) for n in ACTIVATIONS[name])
            gate = gate if arch.mlp_gated else None
            if absorb is None:
                continue
            for c in ("flops_base", "flops_per_context"):
                cols[c][absorb] += cols[c][i]
            if gate is not None:  # gated: reads gate and up, writes their product; the gate output stays on chip
                for c in ("activation_bytes_base", "activation_bytes_per_context"):
                    cols[c][gate] -= cols[c][i] / 3
            keep[i] = False  # the up-projection's output write is now the activated product's
    index = np.flatnonzero(keep)
    text = {c: tuple(getattr(table, c)[j] for j in index) for c in ("kinds", "dtypes", "resources")}
    return OperatorTable(names=tuple(names[j] for j in index), **text, **{c: v[index] for c, v in cols.items()})


class KernelFusion(BaseTechnique):
    id = "kernel-fusion"
    stage = "system"
    summary = "Residual add fused with the next norm, MLP activation in the GEMM epilogue: fewer round-trips, launches."
    Params = KernelFusionParams

    def param_space(self, workload, hardware):
        return (KernelFusionParams(), KernelFusionParams(gemm_epilogue=False), KernelFusionParams(add_norm=False))

    def applicability(self, workload, hardware, params):
        if workload.architecture is None:
            return refuse("the workload carries no architecture to pair residual adds with norms")
        names = set(workload.decode.table.names)
        if not ((params.add_norm and "residual_add" in names and "norms" in names)
                or (params.gemm_epilogue and names & set(ACTIVATIONS))):
            return refuse("no element-wise rows left to fuse (already fused, or the model has none)")
        return OK

    def rewrite(self, workload, hardware, params):
        options = dict(arch=workload.architecture, add_norm=params.add_norm, gemm_epilogue=params.gemm_epilogue)
        prefill = fuse(workload.prefill.table, **options)
        decode = fuse(workload.decode.table, **options)
        before = workload.memory.activation_bytes
        memory = replace(workload.memory, activation_bytes=prefill_activation_peak(workload, prefill))
        new = with_tables(workload, prefill, decode, memory=memory)
        context = workload.prompt_tokens + 1

        def moved(t) -> float:  # activation bytes of one decode step at the first decode context
            return float(((t.activation_bytes_base + t.activation_bytes_per_context * context) * t.layers).sum())

        fused = [text for text, on in (("residual_add into the next norm (add+norm kernel)", params.add_norm),
                                       ("MLP activation into the gate/up GEMM epilogue", params.gemm_epilogue)) if on]
        return new, [
            "fused: " + "; ".join(fused),
            f"decode step activation traffic {moved(workload.decode.table) / 1e6:.2f} MB -> {moved(decode) / 1e6:.2f} "
            f"MB (at context {context}); kernel launches per step {int(workload.decode.table.layers.sum())} -> "
            f"{int(decode.layers.sum())}",
            f"peak prefill activation {before / 1e6:.1f} MB -> {memory.activation_bytes / 1e6:.1f} MB",
        ]


PLUGIN = KernelFusion()
