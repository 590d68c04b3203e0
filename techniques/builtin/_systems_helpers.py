"""Helpers shared by the system-stage placement plugins (parallelism, offloading, NPU co-execution).

They add rows on a link or another processor, find the bytes a weight row keeps resident, and read
GEMM shapes back from the architecture, always building new arrays (plugins must stay pure).
"""

from __future__ import annotations

import math

import numpy as np

from llmeff.architectures import Architecture
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable, Workload

LINKS = ("interconnect", "host-link")
WHOLE_MODEL_ROWS = ("embedding", "final_norm", "lm_head")  # run once per forward pass, not per layer
EXPERT_ROWS = ("expert_gate", "expert_up", "expert_down")


def link_missing(hardware, resource: str) -> str | None:
    """Why ``hardware`` cannot carry rows on ``resource`` ("interconnect" or "host-link"), or None."""
    link = hardware.interconnect if resource == "interconnect" else hardware.host_link
    if link is None:
        return f"hardware '{hardware.id}' lists no {resource}"
    if link.bandwidth_bytes_per_s is None:
        return f"hardware '{hardware.id}' lists its {resource} ({link.kind}) without a bandwidth"
    return None


def applied_ids(workload: Workload) -> set[str]:
    return {record.id for record in workload.applied}


def order_problem(workload: Workload, plugin_id: str, after: tuple[str, ...] = (),
                  exclusive: tuple[str, ...] = ()) -> str | None:
    """A refusal when ``plugin_id`` was applied already, one of ``after`` came first, or one it is
    not modelled with (``exclusive``) was applied."""
    done = applied_ids(workload)
    if plugin_id in done:
        return f"{plugin_id} is already applied"
    clash = sorted(done & set(exclusive))
    if clash:
        return f"{plugin_id} and {', '.join(clash)} are not modelled together"
    earlier = sorted(done & set(after))
    if earlier:
        return f"apply {plugin_id} before {', '.join(earlier)} (it rewrites the per-layer rows they build on)"
    return None


def append_rows(table: OperatorTable, rows: list[dict]) -> OperatorTable:
    """A new table with ``rows`` (dicts of name, kind, dtype, resource and numeric columns) at the end."""
    if not rows:
        return table
    text = {"names": table.names + tuple(r["name"] for r in rows),
            "kinds": table.kinds + tuple(r["kind"] for r in rows),
            "dtypes": table.dtypes + tuple(r["dtype"] for r in rows),
            "resources": table.resources + tuple(r["resource"] for r in rows)}
    numeric = {c: np.concatenate([getattr(table, c), np.array([float(r.get(c, _DEFAULTS[c])) for r in rows])])
               for c in NUMERIC_COLUMNS}
    return OperatorTable(**text, **numeric)


_DEFAULTS = {c: 0.0 for c in NUMERIC_COLUMNS} | {"layers": 1.0, "context_cap": math.inf}


def transfer_row(name: str, resource: str, dtype: str, *, layers: float, **columns: float) -> dict:
    """A row that only moves bytes over a link (no FLOPs): the roofline times it at the link's bandwidth."""
    return {"name": name, "kind": "communication", "dtype": dtype, "resource": resource, "layers": layers, **columns}


def processor_rows(table: OperatorTable) -> np.ndarray:
    """Rows that run on a processor (not a link)."""
    return np.array([r not in LINKS for r in table.resources], dtype=bool)


def activation_peak(workload: Workload, prefill: OperatorTable) -> float:
    """The largest transient activations of one prefill kernel, link buffers left out."""
    mask = processor_rows(prefill)
    values = prefill.activation_bytes_base + prefill.activation_bytes_per_context * workload.prompt_tokens
    return float(values[mask].max()) if mask.any() else 0.0


def touched_experts(arch: Architecture, tokens: float) -> float:
    """Distinct experts ``tokens`` token-choices reach under uniform routing (the build's convention)."""
    if not arch.moe or tokens <= 0:
        return 0.0
    experts, k = arch.moe.num_experts, arch.moe.experts_per_token
    return experts * (1.0 - (1.0 - k / experts) ** tokens)


def stored_weight_bytes(workload: Workload) -> np.ndarray:
    """Per decode row, the weight bytes it keeps resident (all layers that run it).

    A decode row reads its whole weight once per step, so its bytes are what is stored, except
    routed-expert rows (only the touched experts are read: the store holds all E) and the embedding
    (a lookup of a few rows: its table is not in the rows at all; 0 here).
    """
    table, arch = workload.decode.table, workload.architecture
    stored = table.weight_bytes * table.layers
    touched = touched_experts(arch, workload.decode.tokens) if arch is not None else 0.0
    scale = np.array([(arch.moe.num_experts / touched) if name in EXPERT_ROWS and touched else
                      (0.0 if name == "embedding" else 1.0) for name in table.names])
    return np.where(processor_rows(table), stored * scale, 0.0)


def gemm_shape(arch: Architecture, name: str) -> tuple[int, int] | None:
    """(input width k, output width m) of a named GEMM row of ``llmeff.workload.build``, or None."""
    h, heads = arch.hidden_size, arch.num_attention_heads
    mla, moe = arch.mla, arch.moe
    q_head = (mla.qk_nope_head_dim + mla.qk_rope_head_dim) if mla else arch.head_dim
    shapes = {
        "q_proj": (h, heads * q_head),
        "k_proj": (h, arch.kv_heads * arch.head_dim),
        "v_proj": (h, arch.kv_heads * arch.v_head_dim),
        "o_proj": (heads * arch.v_head_dim, h),
        "lm_head": (h, arch.vocab_size),
    }
    if mla:
        shapes |= {"q_a_proj": (h, mla.q_lora_rank), "q_b_proj": (mla.q_lora_rank, heads * q_head),
                   "kv_a_proj": (h, mla.kv_lora_rank + mla.qk_rope_head_dim)}
    if arch.intermediate_size:
        width = arch.intermediate_size
        shapes |= {"gate_proj": (h, width), "up_proj": (h, width), "down_proj": (width, h)}
    if moe:
        width, shared = moe.expert_intermediate_size, moe.shared_expert_intermediate_size * moe.num_shared_experts
        shapes |= {"router": (h, moe.num_experts), "expert_gate": (h, width), "expert_up": (h, width),
                   "expert_down": (width, h), "shared_gate": (h, shared), "shared_up": (h, shared),
                   "shared_down": (shared, h)}
    return shapes.get(name)


def bytes_of(dtype: str) -> float:
    return BYTES_PER_ELEMENT[dtype]


def gib(value: float) -> str:
    """Bytes as decimal gigabytes for the change lines (datasheets use 10^9)."""
    return f"{value / 1e9:.2f} GB"
