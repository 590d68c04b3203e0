"""Pieces the compression plugins share (quantization, sparsity, pruning, factorization).

- ``gemm_shapes``: the (input width k, output width m) of every GEMM row ``llmeff.workload.build``
  makes, by row name (per head for MLA's absorbed products);
- ``stored_weight_bytes``: the resident weight bytes each prefill row stands for, so that a per-row
  rewrite of the weights also rewrites the memory footprint (prefill reads every stored weight
  once; MoE expert rows read the T experts a prefill pass touches of E);
- ``row_keys``: (name, occurrence) keys that match rows across tables (sliding-window models
  repeat the layer's row names once per group of layers);
- ``expected_union``: 1 - (1 - a)^n, the expected fraction of units that n independent uniform
  draws of a fraction a reach (the builder's MoE formula E (1 - (1 - k/E)^n), divided by E);
- ``quantize_kv``: the KV-cache byte rewrite of kv-cache-quant, also used by
  weight-activation-quant for its optional KV bits.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from llmeff.architectures import Architecture
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable, Workload

KV_SCALE_BITS = 16  # KIVI stores each group's scale and minimum as fp16 tensors (jy-yuan/KIVI models/llama_kivi.py)


def gemm_shapes(arch: Architecture) -> dict[str, tuple[int, int]]:
    """Name -> (k, m) of each GEMM row the builder makes for ``arch`` (a k x m weight per row)."""
    h = arch.hidden_size
    shapes = {"lm_head": (h, arch.vocab_size)}
    if arch.ssm:
        s, inner = arch.ssm, arch.ssm.intermediate_size
        shapes.update(in_proj=(h, 2 * inner), x_proj=(inner, s.time_step_rank + 2 * s.state_size),
                      dt_proj=(s.time_step_rank, inner), out_proj=(inner, h))
        return shapes
    heads, kv_heads, d, dv = arch.num_attention_heads, arch.kv_heads, arch.head_dim, arch.v_head_dim
    if arch.mla:
        mla = arch.mla
        q_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim
        if mla.q_lora_rank:
            shapes.update(q_a_proj=(h, mla.q_lora_rank), q_b_proj=(mla.q_lora_rank, heads * q_head))
        else:
            shapes["q_proj"] = (h, heads * q_head)
        shapes.update(kv_a_proj=(h, mla.kv_lora_rank + mla.qk_rope_head_dim),
                      q_absorb=(mla.qk_nope_head_dim, mla.kv_lora_rank),  # per head
                      v_up_proj=(mla.kv_lora_rank, mla.v_head_dim))  # per head
    else:
        shapes.update(q_proj=(h, heads * d), k_proj=(h, kv_heads * d), v_proj=(h, kv_heads * dv))
    shapes["o_proj"] = (heads * dv, h)
    if arch.intermediate_size:
        width = arch.intermediate_size
        shapes.update(up_proj=(h, width), down_proj=(width, h))
        if arch.mlp_gated:
            shapes["gate_proj"] = (h, width)
    if arch.moe:
        moe = arch.moe
        shapes.update(router=(h, moe.num_experts), expert_up=(h, moe.expert_intermediate_size),
                      expert_down=(moe.expert_intermediate_size, h))
        if arch.mlp_gated:
            shapes["expert_gate"] = (h, moe.expert_intermediate_size)
        if moe.num_shared_experts:
            shared = moe.shared_expert_intermediate_size * moe.num_shared_experts
            shapes.update(shared_up=(h, shared), shared_down=(shared, h))
            if arch.mlp_gated:
                shapes["shared_gate"] = (h, shared)
    return shapes


def row_keys(names: tuple[str, ...]) -> list[tuple[str, int]]:
    """(name, how many rows of that name came before): a key that survives inserted or removed rows."""
    seen: dict[str, int] = {}
    keys = []
    for name in names:
        keys.append((name, seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
    return keys


def expected_union(fraction: float, draws: float) -> float:
    """Expected fraction of units reached by ``draws`` independent uniform picks of ``fraction`` of them."""
    return 1.0 - (1.0 - fraction) ** draws


def stored_weight_bytes(workload: Workload) -> np.ndarray:
    """Per prefill row: the bytes of resident weights the row's weight reads stand for."""
    table, arch = workload.prefill.table, workload.architecture
    factor = np.ones(len(table))
    for i, name in enumerate(table.names):
        if name == "embedding" or (name == "lm_head" and arch.tie_word_embeddings):
            factor[i] = 0.0  # the embedding table is resident whole; a pass reads only its tokens' rows
        elif name.startswith("expert_") and arch.moe:
            experts, k = arch.moe.num_experts, arch.moe.experts_per_token
            factor[i] = 1.0 / expected_union(k / experts, workload.prefill.tokens)  # E / T
    return table.weight_bytes * table.layers * factor


def per_row(table: OperatorTable, values: dict, default: float = 1.0) -> np.ndarray:
    """An array over the rows: ``values[name]`` where the name is a key, else ``default``."""
    return np.array([values.get(name, default) for name in table.names], dtype=float)


def memory_delta(workload: Workload, factors: dict[str, float]) -> float:
    """Change of resident weight bytes when each named row's weights are scaled by its factor."""
    stored = stored_weight_bytes(workload)
    return float((stored * (per_row(workload.prefill.table, factors) - 1.0)).sum())


def kv_bits_per_element(bits: int, group_size: int, zero_point: bool) -> float:
    """Stored bits of one cached element: the value, plus a 16-bit scale (and minimum) per group."""
    if not group_size:
        return float(bits)  # one scale per tensor: nothing per element
    return bits + (KV_SCALE_BITS + (KV_SCALE_BITS if zero_point else 0)) / group_size


def kv_label(bits: int, group_size: int, residual: int, number_format: str) -> str:
    label = f"{'fp' if number_format == 'fp' else 'int'}{bits}"
    return label + (f" g{group_size}" if group_size else "") + (f" r{residual}" if residual else "")


def _windows(name: str, residual: int) -> float:
    """16-bit tokens a decode read of the cache meets (KIVI, jy-yuan/KIVI models/llama_kivi.py).

    KIVI keeps the newest values in a sliding fp16 window of R, plus the token being generated
    (R + 1 read per step); it flushes keys to 2-bit in groups of R, so 1..R keys are fp16, (R + 1) / 2
    on average over each cycle of R steps.
    """
    if not residual:
        return 0.0
    return {"qk_matmul": (residual + 1) / 2, "sv_matmul": residual + 1.0}.get(name, float(residual))


def quantize_kv(workload: Workload, *, bits: int, group_size: int, zero_point: bool, residual: int = 0,
                number_format: str = "int") -> tuple[Workload, list[str]]:
    """The workload with its KV cache stored at ``bits`` (see kv_cache_quant's docstring for the model)."""
    stored_bits = 8.0 * BYTES_PER_ELEMENT[workload.kv_dtype]
    q = kv_bits_per_element(bits, group_size, zero_point) / stored_bits  # quantized bytes per 16-bit byte
    s = workload.prompt_tokens
    dequant_flops = 2.0 if zero_point and group_size else 1.0  # x = scale * q (+ min) per element read

    def writes(table: OperatorTable, factor: float) -> OperatorTable:
        mask = np.array([k == "gemm" for k in table.kinds]) & (table.kv_bytes_base > 0)
        return table.replace(kv_bytes_base=np.where(mask, table.kv_bytes_base * factor, table.kv_bytes_base))

    # prefill: the prompt attends to its fresh 16-bit K and V; the projections also write the cache,
    # quantized except the residual window
    window = min(s, residual)
    prefill = writes(workload.prefill.table, 1.0 + q * (s - window) / s)
    # decode: the new token goes to the 16-bit window and is later read back and quantized (R > 0),
    # or is quantized as it is written (R = 0)
    decode = writes(workload.decode.table, (2.0 + q) if residual else q)
    base, slope = decode.kv_bytes_base.copy(), decode.kv_bytes_per_context.copy()
    flops = decode.flops_per_context.copy()
    for i, (name, kind) in enumerate(zip(decode.names, decode.kinds)):
        if kind != "attention" or slope[i] <= 0:
            continue
        w = _windows(name, residual)
        if w >= min(decode.context_cap[i], s + workload.output_tokens):
            continue  # the residual covers the layer's window or the whole generation: all stays 16-bit
        elements = slope[i] / BYTES_PER_ELEMENT[workload.kv_dtype]
        # exact once the context holds the window (c >= w): w tokens at 16 bits, the rest quantized;
        # steps before that are charged the whole window (at most w tokens of 16 - b bits too many)
        base[i] += slope[i] * w * (1.0 - q)
        flops[i] += dequant_flops * elements
        slope[i] *= q
    decode = decode.replace(kv_bytes_base=base, kv_bytes_per_context=slope, flops_per_context=flops)
    memory = replace(workload.memory, kv_cache_bytes=workload.memory.kv_cache_bytes
                     * (q + _resident_window_share(workload, residual) * (1.0 - q)))
    new = replace(workload, prefill=replace(workload.prefill, table=prefill),
                  decode=replace(workload.decode, table=decode), memory=memory,
                  kv_bytes_per_token=workload.kv_bytes_per_token * q,
                  kv_dtype=kv_label(bits, group_size, residual, number_format))
    lines = [
        f"KV cache stored at {q * stored_bits:.3f} bits per element ({q:.4f}x the {workload.kv_dtype} bytes)"
        + (f"; the newest {residual} tokens of each layer stay {workload.kv_dtype}" if residual else ""),
        f"KV memory {workload.memory.kv_cache_bytes / 1e9:.3f} GB -> {memory.kv_cache_bytes / 1e9:.3f} GB; "
        f"decode attention reads the quantized cache and dequantizes ({dequant_flops:.0f} FLOP per element)",
    ]
    return new, lines


def _resident_window_share(workload: Workload, residual: int) -> float:
    """Share of the final KV footprint that lies in the 16-bit residual windows (R per layer)."""
    if not residual:
        return 0.0
    table, tokens = workload.decode.table, workload.prompt_tokens + workload.output_tokens
    rows = [i for i, k in enumerate(table.kinds) if k == "attention" and table.kv_bytes_per_context[i] > 0]
    held = sum(table.layers[i] * min(tokens, table.context_cap[i]) * table.kv_bytes_per_context[i] for i in rows)
    window = sum(table.layers[i] * min(tokens, table.context_cap[i], residual) * table.kv_bytes_per_context[i]
                 for i in rows)
    return float(window / held) if held else 0.0


def insert_row(table: OperatorTable, name: str, kind: str, dtype: str, **values: float) -> OperatorTable:
    """A new table with one more row (on the analysis's processor) just before the final norm."""
    at = table.names.index("final_norm") if "final_norm" in table.names else len(table)
    defaults = {c: 0.0 for c in NUMERIC_COLUMNS} | {"layers": 1.0, "context_cap": np.inf}
    text = lambda column, value: getattr(table, column)[:at] + (value,) + getattr(table, column)[at:]  # noqa: E731
    return OperatorTable(names=text("names", name), kinds=text("kinds", kind), dtypes=text("dtypes", dtype),
                         resources=text("resources", "compute"),
                         **{c: np.insert(getattr(table, c), at, (defaults | values)[c]) for c in NUMERIC_COLUMNS})


def is_16_bit(dtype: str) -> bool:
    return BYTES_PER_ELEMENT.get(dtype) == 2


__all__ = ["expected_union", "gemm_shapes", "insert_row", "is_16_bit", "kv_bits_per_element", "kv_label",
           "memory_delta",
           "per_row", "quantize_kv", "row_keys", "stored_weight_bytes"]
