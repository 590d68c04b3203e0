"""Tensor parallelism (Megatron-LM, arXiv 1909.08053 section 3): every layer split over t devices.

Per device, the column-parallel GEMMs (q, gate, up; the LM head split by vocabulary) keep 1/t of
their weight and output, the row-parallel ones (o, down) 1/t of their weight and input, and the
attention rows 1/t of the heads. Each layer adds two all-reduces of the hidden states (after
attention and after the MLP; one when attention and MLP run in parallel), timed on the
interconnect: a ring all-reduce moves 2(t-1)/t of the message per device (first principles:
reduce-scatter plus all-gather, each (t-1)/t), the message being tokens x hidden x activation
bytes. The split LM head adds an all-gather of the logits ((t-1)/t of tokens x vocab per device).

KV heads: with K KV heads and K >= t each device keeps K/t of them (t must divide K); with K < t
(MQA, or GQA over many devices) each keeps one, replicated t/K times (t must be a multiple of K),
as vLLM does. MLA's compressed latent is shared by all heads, so its cache and down-projections
are replicated. Norms, residual adds, the router and the embedding table stay replicated (the
embedding is looked up on every device, so no embedding all-reduce is needed). MoE experts are
split like the MLP (each expert's width over t devices), not placed whole per device (expert
parallelism is not modelled). Not modelled: sequence parallelism, overlap of the all-reduce with
compute, the per-collective latency term (only bytes over the link's bandwidth count).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._systems_helpers import (
    activation_peak, append_rows, bytes_of, gemm_shape, gib, link_missing, order_problem, stored_weight_bytes,
    transfer_row,
)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

COLUMN = ("q_proj", "q_b_proj", "gate_proj", "up_proj", "expert_gate", "expert_up", "shared_gate", "shared_up",
          "lm_head")
ROW = ("o_proj", "down_proj", "expert_down", "shared_down")
KV_PROJECTIONS = ("k_proj", "v_proj")
PER_HEAD = ("qk_matmul", "softmax", "sv_matmul", "fused_attention", "q_absorb", "v_up_proj")
PER_WIDTH = ("mlp_act", "expert_act")
LATER = ("pipeline-parallel", "offloading", "expert-offloading", "pd-disaggregation", "npu-outlier-offload",
         "npu-subgraph-scheduling")


@dataclass(frozen=True)
class TensorParallelParams(Params):
    degree: int = 2  # devices each layer is split over

    def validate(self) -> None:
        if not isinstance(self.degree, int) or self.degree < 2:
            raise InvalidInputError(f"must be an integer of at least 2, got {self.degree}", field="degree")


def kv_share(arch, degree: int) -> float:
    """Share of the KV heads (and KV cache) each device keeps."""
    if arch.mla:
        return 1.0  # the latent is shared by all heads: every device keeps all of it
    kv = arch.kv_heads
    return 1.0 / degree if kv >= degree else 1.0 / kv


class TensorParallel(BaseTechnique):
    id = "tensor-parallel"
    stage = "system"
    order = -5  # divides the rows that the other system rewrites then build on
    summary = "Megatron tensor parallelism: per-device rows divided by t, two all-reduces a layer on the interconnect."
    aliases = ("tp",)
    Params = TensorParallelParams

    def param_space(self, workload, hardware):
        arch = workload.architecture
        fitting = [t for t in (2, 4, 8) if arch is None or self._shape_problem(arch, t) is None]
        return tuple(TensorParallelParams(degree=t) for t in (fitting or [2]))

    def applicability(self, workload, hardware, params):
        arch = workload.architecture
        problem = (link_missing(hardware, "interconnect") or order_problem(workload, self.id, LATER)
                   or (None if arch is not None else "the workload carries no architecture to split"))
        if problem:
            return refuse(problem)
        if arch.ssm:
            return refuse("state-space (Mamba) layers are not modelled for tensor parallelism")
        if "o_proj" not in workload.prefill.table.names:
            return refuse("no o_proj rows: cannot place the per-layer all-reduces")
        problem = self._shape_problem(arch, params.degree)
        return refuse(problem) if problem else OK

    @staticmethod
    def _shape_problem(arch, t: int) -> str | None:
        heads, kv = arch.num_attention_heads, arch.kv_heads
        if heads % t:
            return f"degree {t} does not divide the {heads} attention heads"
        if not arch.mla and kv % t and t % kv:
            return f"degree {t} and the {kv} KV heads: neither divides the other"
        widths = {"intermediate_size": arch.intermediate_size,
                  "expert_intermediate_size": arch.moe.expert_intermediate_size if arch.moe else None}
        for name, width in widths.items():
            if width and width % t:
                return f"degree {t} does not divide the {name} {width}"
        return None

    def rewrite(self, workload, hardware, params):
        t, arch = params.degree, workload.architecture
        share = kv_share(arch, t)
        tables = [self._split(phase, arch, t, share, workload.activation_dtype)
                  for phase in (workload.prefill, workload.decode)]
        stored = stored_weight_bytes(workload)
        kept = _factors(workload.decode.table, arch, t, share)[1]
        if arch.tie_word_embeddings:  # the tied table is kept whole for the embedding lookup
            kept = np.where(np.array(workload.decode.table.names) == "lm_head", 1.0, kept)
        memory = workload.memory
        weights = memory.weight_bytes - float((stored * (1.0 - kept)).sum())
        new_memory = replace(memory, weight_bytes=weights, kv_cache_bytes=memory.kv_cache_bytes * share,
                             activation_bytes=activation_peak(workload, tables[0]))
        new = with_tables(workload, *tables, memory=new_memory, devices=workload.devices * t,
                          assumptions=workload.assumptions + (f"tensor parallel over {t} devices: rows and memory "
                                                              "are per device",))
        layers = sum(int(n) for name, n in zip(workload.prefill.table.names, workload.prefill.table.layers)
                     if name == "o_proj")
        kv_line = ("MLA latent cache replicated on every device" if arch.mla else
                   f"{arch.kv_heads} KV heads over {t} devices: {max(1, arch.kv_heads // t)} per device"
                   + (f" (each replicated {t // arch.kv_heads}x)" if arch.kv_heads < t else ""))
        message = workload.prefill.tokens * arch.hidden_size * bytes_of(workload.activation_dtype)
        return new, [
            f"q/k/v, gate/up, LM head column-parallel and o/down row-parallel over {t} devices; norms, router "
            "and embedding replicated",
            kv_line,
            f"{self._all_reduces(arch)} all-reduce(s) per layer over {layers} layers: "
            f"{2 * (t - 1) / t:.3f} x {message / 1e6:.2f} MB per device in prefill on the interconnect",
            f"weights per device {gib(memory.weight_bytes)} -> {gib(weights)}; KV cache "
            f"{gib(memory.kv_cache_bytes)} -> {gib(new_memory.kv_cache_bytes)}",
        ]

    @staticmethod
    def _all_reduces(arch) -> int:
        return 1 if arch.parallel_attn_mlp else 2  # attention and MLP summed before one all-reduce

    def _split(self, phase, arch, t: int, share: float, dtype: str):
        table = phase.table
        flops, weight, act, kv = _factors(table, arch, t, share)
        split = table.replace(
            flops_base=table.flops_base * flops, flops_per_context=table.flops_per_context * flops,
            weight_bytes=table.weight_bytes * weight,
            activation_bytes_base=table.activation_bytes_base * act,
            activation_bytes_per_context=table.activation_bytes_per_context * act,
            kv_bytes_base=table.kv_bytes_base * kv, kv_bytes_per_context=table.kv_bytes_per_context * kv)
        element = bytes_of(dtype)
        ring = 2.0 * (t - 1) / t  # reduce-scatter then all-gather, each (t-1)/t of the message
        layers = sum(float(n) for name, n in zip(table.names, table.layers) if name == "o_proj")
        message = phase.tokens * arch.hidden_size * element
        rows = [transfer_row(name, "interconnect", dtype, layers=layers, activation_bytes_base=ring * message)
                for name in ("tp_allreduce_attention", "tp_allreduce_mlp")[:self._all_reduces(arch)]]
        if "lm_head" in table.names:
            head = table.row(table.index("lm_head"))
            logits_tokens = head.flops_base / (2.0 * arch.hidden_size * arch.vocab_size)
            rows.append(transfer_row("tp_logits_allgather", "interconnect", dtype, layers=1,
                                     activation_bytes_base=(t - 1) / t * logits_tokens * arch.vocab_size * element))
        return append_rows(split, rows)


def _factors(table, arch, t: int, share: float) -> tuple[np.ndarray, ...]:
    """Per row: the share of FLOPs, weight, activation and KV bytes one device keeps."""
    flops, weight, act, kv = (np.ones(len(table)) for _ in range(4))
    for i, name in enumerate(table.names):
        if name in COLUMN or name in ROW:
            k, m = gemm_shape(arch, name)
            inputs = k / (k + m)  # share of the GEMM's activation bytes that is its input
            # column-parallel: whole input on every device, 1/t of the output; row-parallel: the reverse
            act[i] = inputs + (1 - inputs) / t if name in COLUMN else inputs / t + (1 - inputs)
            flops[i] = weight[i] = 1.0 / t
        elif name in KV_PROJECTIONS:  # whole input, the device's KV heads out (replicated heads recomputed)
            flops[i] = weight[i] = kv[i] = share
        elif name in PER_HEAD or name in PER_WIDTH:
            flops[i] = weight[i] = act[i] = 1.0 / t
            kv[i] = share
    return flops, weight, act, kv


PLUGIN = TensorParallel()
