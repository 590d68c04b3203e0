"""Structured pruning (LLM-Pruner, Sheared-LLaMA, SliceGPT): the model becomes a smaller dense model.

The kept fractions shrink the architecture itself: MLP width (dense MLPs, each expert and the
shared experts), attention heads (under grouped-query attention whole KV groups go, so the
query-per-KV ratio stays), the hidden size (SliceGPT's slicing: the embedding, every GEMM's
hidden side, norms and residuals) and layers (the deepest layers of each group of identical
layers go; which ones does not change the cost). The pruned architecture replaces the workload's,
so later plugins read the new shapes.

Rows are rewritten consistently by building the unpruned and the pruned model at the workload's
batch and lengths and scaling every row, column by column, by pruned / unpruned (FLOPs, weight,
activation and KV bytes, layer counts): exact for the baseline, and exact after any rewrite that
scaled a row's column uniformly (weight or KV quantization, 2:4 sparsity; per-channel scales and
CSR row offsets, which depend on a GEMM's input width, to within 16/k or 32/k bits per weight).
Low-rank factorization and contextual sparsity must come after it (their factors depend on the
shapes). Rows that other plugins added (a compressor, a draft model) are left alone. Activation
bytes that an earlier plugin split unevenly (quantized GEMM inputs) scale by the ratio of the row's
totals, an approximation. The memory footprint follows: the KV
cache and kv_bytes_per_token by the KV ratio, resident weights by each row's ratio, the embedding
table by its parameter change, the activation peak recomputed.

SliceGPT also multiplies each block's two residual paths by a d' x d' matrix (attn_shortcut_Q and
mlp_shortcut_Q in its code, microsoft/TransformerCompression): with ``shortcut_rotations`` (the
default when the hidden size is sliced) one GEMM row per layer carries both.

Not modelled: LLM-Pruner's LoRA or Sheared-LLaMA's continued pre-training (a training cost) and
per-layer non-uniform pruning ratios (give the average fractions) and dropping whole MoE experts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.param_count import count_parameters
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._compression_helpers import insert_row, row_keys, stored_weight_bytes
from llmeff.techniques.builtin._tables import prefill_activation_peak, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.build import build_workload
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable
from llmeff.workload.request import WorkloadRequest

FRACTIONS = ("mlp", "heads", "hidden", "layers")
TWINS = (("flops_base", "flops_per_context"), ("activation_bytes_base", "activation_bytes_per_context"),
         ("kv_bytes_base", "kv_bytes_per_context"))


@dataclass(frozen=True)
class StructuredPruningParams(Params):
    mlp: float = 1.0  # kept fraction of the MLP intermediate width
    heads: float = 1.0  # kept fraction of attention heads
    hidden: float = 1.0  # kept fraction of the hidden size (SliceGPT)
    layers: float = 1.0  # kept fraction of layers
    shortcut_rotations: bool = True  # SliceGPT's residual-path rotations, when the hidden size is sliced

    def validate(self) -> None:
        for name in FRACTIONS:
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidInputError(f"must be a kept fraction in (0, 1], got {value}", field=name)
        if all(getattr(self, name) == 1.0 for name in FRACTIONS):
            raise InvalidInputError("nothing is pruned: set mlp, heads, hidden or layers below 1 (Sheared-LLaMA-2.7B "
                                    "from Llama-2-7B: hidden=0.625,heads=0.625,mlp=0.6279,shortcut_rotations=false)",
                                    field="mlp")


def pruned_architecture(arch, params: StructuredPruningParams):
    """The smaller dense architecture (head size, vocabulary and layer kinds unchanged)."""
    changes: dict = {}
    if params.mlp < 1.0:
        if arch.intermediate_size:
            changes["intermediate_size"] = max(1, round(arch.intermediate_size * params.mlp))
        if arch.moe:
            moe = arch.moe
            width = lambda w: max(1, round(w * params.mlp)) if w else 0  # noqa: E731
            changes["moe"] = replace(moe, expert_intermediate_size=width(moe.expert_intermediate_size),
                                     shared_expert_intermediate_size=width(moe.shared_expert_intermediate_size))
    if params.heads < 1.0:
        heads, kv = arch.num_attention_heads, arch.num_key_value_heads
        if kv in (heads, 1):  # MHA prunes heads one by one; MQA keeps its single KV head
            new_heads = max(1, round(heads * params.heads))
            changes.update(num_attention_heads=new_heads, num_key_value_heads=new_heads if kv == heads else 1)
        else:  # GQA: whole groups of heads/kv query heads with their KV head
            new_kv = max(1, round(kv * params.heads))
            changes.update(num_attention_heads=new_kv * (heads // kv), num_key_value_heads=new_kv)
    if params.hidden < 1.0:
        hidden = max(1, round(arch.hidden_size * params.hidden))
        changes.update(hidden_size=hidden, embedding_dim=hidden if arch.embedding_dim == arch.hidden_size
                       else arch.embedding_dim)
    pruned = replace(arch, **changes)
    return _keep_layers(pruned, params.layers) if params.layers < 1.0 else pruned


def _keep_layers(arch, fraction: float):
    """Drop the deepest layers of each kind (same MoE-ness and window), keeping at least one of each."""
    kinds: dict[tuple, list[int]] = {}
    moe, windowed = set(arch.moe_layer_indices), set(arch.sliding_window_layers)
    chunked = set(arch.chunked_attention_layers)
    for i in range(arch.num_layers):
        kinds.setdefault((i in moe, i in windowed, i in chunked), []).append(i)
    kept = sorted(i for group in kinds.values() for i in group[:max(1, round(len(group) * fraction))])
    index = {old: new for new, old in enumerate(kept)}
    remap = lambda layers: tuple(index[i] for i in layers if i in index)  # noqa: E731
    changes = dict(num_layers=len(kept), sliding_window_layers=remap(arch.sliding_window_layers),
                   chunked_attention_layers=remap(arch.chunked_attention_layers),
                   no_rope_layers=remap(arch.no_rope_layers))
    if arch.moe:
        changes["moe"] = replace(arch.moe, layer_indices=remap(arch.moe.layer_indices))
    return replace(arch, **changes)


def _ratios(before: OperatorTable, after: OperatorTable) -> dict:
    """(name, occurrence) -> per-column ratio pruned / unpruned.

    A column the unpruned row leaves at 0 (an earlier plugin may have filled it: KV quantization's
    fp16 window adds a base to the attention reads) takes the ratio of its per-context or base twin.
    """
    found = {key: i for i, key in enumerate(row_keys(after.names))}
    out = {}
    for i, key in enumerate(row_keys(before.names)):
        if key not in found:
            continue
        j = found[key]
        ratio = {c: getattr(after, c)[j] / getattr(before, c)[i] for c in NUMERIC_COLUMNS
                 if c != "context_cap" and getattr(before, c)[i]}
        for base, slope in TWINS:
            ratio.setdefault(base, ratio.get(slope, 1.0))
            ratio.setdefault(slope, ratio.get(base, 1.0))
        out[key] = ratio | {c: ratio.get(c, 1.0) for c in ("layers", "weight_bytes")}
    return out


def _apply(table: OperatorTable, ratios: dict) -> OperatorTable:
    columns = {c: getattr(table, c).copy() for c in NUMERIC_COLUMNS if c != "context_cap"}
    for i, key in enumerate(row_keys(table.names)):
        for c, ratio in ratios.get(key, {}).items():
            columns[c][i] *= ratio
    columns["layers"] = np.round(columns["layers"])
    return table.replace(**columns)


def _shortcut_row(table: OperatorTable, tokens: int, width: int, layers: int, weight_bytes: float, act: float):
    """SliceGPT's two d' x d' residual rotations per layer, as one GEMM row."""
    return insert_row(table, "shortcut_rotation", "gemm", table.dtypes[table.names.index("residual_add")],
                      layers=layers, flops_base=2 * 2.0 * tokens * width * width,
                      weight_bytes=2.0 * width * width * weight_bytes,
                      activation_bytes_base=2 * 2.0 * tokens * width * act)


class StructuredPruning(BaseTechnique):
    id = "structured-pruning"
    stage = "model"
    summary = "Removes MLP channels, heads, hidden dimensions or layers: the model becomes a smaller dense one."
    aliases = ("structural-pruning",)
    Params = StructuredPruningParams

    def param_space(self, workload, hardware):
        P = StructuredPruningParams
        return (P(mlp=0.8, heads=0.8), P(hidden=0.75), P(layers=0.75),
                P(hidden=0.625, heads=0.625, mlp=0.6279, shortcut_rotations=False))

    def applicability(self, workload, hardware, params):
        arch = workload.architecture
        if arch is None:
            return refuse("the workload carries no architecture to prune")
        if arch.ssm:
            return refuse("pruning a Mamba mixer is not modelled")
        # these rewrite rows by shape-dependent factors (a rank, a union over the MLP width, added rows)
        done = {a.id for a in workload.applied} & {"low-rank-factorization", "contextual-sparsity"}
        if done:
            return refuse(f"apply structured pruning before {', '.join(sorted(done))}: it changes the shapes they "
                          "rewrote")
        return OK

    def rewrite(self, workload, hardware, params):
        arch = workload.architecture
        pruned = pruned_architecture(arch, params)
        request = WorkloadRequest(batch=workload.batch, prompt_tokens=workload.prompt_tokens,
                                  output_tokens=workload.output_tokens)
        old, ref = build_workload(arch, request), build_workload(pruned, request)  # 16-bit references
        prefill_ratios = _ratios(old.prefill.table, ref.prefill.table)
        prefill = _apply(workload.prefill.table, prefill_ratios)
        decode = _apply(workload.decode.table, _ratios(old.decode.table, ref.decode.table))
        weight_bytes = _resident_weights(workload, pruned, prefill_ratios)
        lines = []
        if params.hidden < 1.0 and params.shortcut_rotations:
            width, layers = pruned.hidden_size, pruned.num_layers
            per_weight = _block_bytes_per_weight(workload, old)
            act = BYTES_PER_ELEMENT[workload.activation_dtype]
            prefill = _shortcut_row(prefill, workload.prefill.tokens, width, layers, per_weight, act)
            decode = _shortcut_row(decode, workload.decode.tokens, width, layers, per_weight, act)
            weight_bytes += 2.0 * width * width * layers * per_weight
            lines.append(f"SliceGPT residual rotations: 2 x {width}x{width} per layer ({layers} layers)")
        memory = replace(workload.memory, weight_bytes=weight_bytes, kv_cache_bytes=workload.memory.kv_cache_bytes
                         * _ratio(ref.memory.kv_cache_bytes, old.memory.kv_cache_bytes))
        new = with_tables(workload, prefill, decode, architecture=pruned, memory=memory,
                          kv_bytes_per_token=workload.kv_bytes_per_token
                          * _ratio(ref.kv_bytes_per_token, old.kv_bytes_per_token))
        new = replace(new, memory=replace(new.memory, activation_bytes=prefill_activation_peak(new, prefill)))
        return new, [
            f"{_shape(arch)} -> {_shape(pruned)}",
            f"parameters {count_parameters(arch).total / 1e9:.3f} B -> {count_parameters(pruned).total / 1e9:.3f} B; "
            f"weight memory {workload.memory.weight_bytes / 1e9:.2f} GB -> {weight_bytes / 1e9:.2f} GB",
            f"KV cache {workload.memory.kv_cache_bytes / 1e9:.3f} GB -> {memory.kv_cache_bytes / 1e9:.3f} GB",
        ] + lines


def _resident_weights(workload, pruned, prefill_ratios: dict) -> float:
    """Each row's stored bytes follow its weight x layers ratio; the embedding table its parameter count."""
    table = workload.prefill.table
    scale = np.array([prefill_ratios.get(k, {}).get("weight_bytes", 1.0) * prefill_ratios.get(k, {}).get("layers", 1.0)
                      for k in row_keys(table.names)])
    # the embedding row reads tokens x hidden weights: its bytes per element
    per_element = table.weight_bytes[table.names.index("embedding")] / (workload.prefill.tokens
                                                                        * workload.architecture.hidden_size)
    fixed = [c.embedding + c.position_embedding + c.other
             for c in (count_parameters(workload.architecture), count_parameters(pruned))]
    return (workload.memory.weight_bytes + float((stored_weight_bytes(workload) * (scale - 1.0)).sum())
            + (fixed[1] - fixed[0]) * per_element)


def _block_bytes_per_weight(workload, reference) -> float:
    """Bytes per weight of the block GEMMs now (2 x current / the 16-bit reference build's)."""
    def total(table):
        rows = [i for i, (n, k) in enumerate(zip(table.names, table.kinds)) if k == "gemm" and n != "lm_head"]
        return float((table.weight_bytes[rows] * table.layers[rows]).sum())
    return 2.0 * total(workload.prefill.table) / total(reference.prefill.table)


def _shape(a) -> str:
    mlp = a.intermediate_size or (a.moe.expert_intermediate_size if a.moe else 0)
    heads = f"{a.num_attention_heads} heads ({a.num_key_value_heads} KV)"
    return f"{a.num_layers} layers, hidden {a.hidden_size}, {heads}, MLP {mlp}"


def _ratio(new: float, old: float) -> float:
    return new / old if old else 1.0


PLUGIN = StructuredPruning()
