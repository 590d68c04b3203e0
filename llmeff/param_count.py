"""Parameter counts implied by an Architecture: every weight matrix, bias and norm vector.

Conventions (those of the reference fact sheet, /work/shared/reference/models-notes.md section 2):
the embedding is counted once when the LM head is tied and twice otherwise; learned position
tables, routers, shared experts and DeepSeek-V3's score-correction bias are included; the
multi-token-prediction module and vision towers are not part of a decoder config and are not
counted. ``active`` is what one token touches: everything except the routed experts it is not
sent to (embedding and LM head included, as in the sheet's MoE entries).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # architectures imports this module; only the type is needed here
    from llmeff.architectures.model import MLA, SSM, Architecture

__all__ = ["LayerParameters", "ParameterCount", "count_parameters"]


@dataclass(frozen=True)
class LayerParameters:
    """Parameters of one decoder layer, split by the part of the block that holds them."""

    index: int
    attention: int = 0  # projections, their biases, q/k norms, MLA low-rank norms
    dense_mlp: int = 0
    routed_experts: int = 0  # all routed experts of an MoE layer
    active_routed_experts: int = 0  # the experts_per_token of them that one token uses
    shared_experts: int = 0  # always-on experts, with Qwen2-MoE's shared-expert gate
    router: int = 0
    norms: int = 0
    ssm: int = 0  # a Mamba mixer

    @property
    def mlp(self) -> int:
        return self.dense_mlp + self.routed_experts + self.shared_experts + self.router

    @property
    def total(self) -> int:
        return self.attention + self.mlp + self.norms + self.ssm

    @property
    def active(self) -> int:
        return self.total - self.routed_experts + self.active_routed_experts


@dataclass(frozen=True)
class ParameterCount:
    """Total and per-token-active parameters, with a breakdown."""

    total: int
    active: int
    embedding: int  # token embedding table
    position_embedding: int  # learned position table (OPT, GPT-2)
    lm_head: int  # 0 when tied to the embedding, apart from an LM-head bias
    final_norm: int
    other: int  # BLOOM's embedding norm, OPT's embedding projections
    per_layer: tuple[LayerParameters, ...]

    @property
    def per_layer_attention(self) -> tuple[int, ...]:
        return tuple(layer.attention for layer in self.per_layer)

    @property
    def per_layer_mlp(self) -> tuple[int, ...]:
        return tuple(layer.mlp for layer in self.per_layer)

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding - self.position_embedding - self.lm_head

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "per_layer"}
        out["non_embedding"] = self.non_embedding
        out["per_layer"] = [
            {**{f.name: getattr(layer, f.name) for f in fields(layer)}, "mlp": layer.mlp, "total": layer.total,
             "active": layer.active}
            for layer in self.per_layer
        ]
        return out


def count_parameters(arch: Architecture) -> ParameterCount:
    """Count every parameter the architecture implies; see the module docstring for conventions."""
    norm = _norm_width(arch)
    moe_layers = set(arch.moe_layer_indices)
    per_layer = tuple(_layer(arch, i, i in moe_layers, norm) for i in range(arch.num_layers))
    embedding = arch.vocab_size * arch.embedding_dim
    lm_head = (0 if arch.tie_word_embeddings else embedding) + (arch.vocab_size if arch.lm_head_bias else 0)
    position = arch.position_table_rows * arch.hidden_size
    other = norm(arch.hidden_size) if arch.embedding_norm else 0
    if arch.embedding_dim != arch.hidden_size:  # OPT-350m: project_in and project_out, no bias
        other += 2 * arch.embedding_dim * arch.hidden_size
    final = norm(arch.hidden_size) if arch.final_norm else 0
    fixed = embedding + lm_head + position + other + final
    return ParameterCount(
        total=fixed + sum(layer.total for layer in per_layer),
        active=fixed + sum(layer.active for layer in per_layer),
        embedding=embedding, position_embedding=position, lm_head=lm_head, final_norm=final, other=other,
        per_layer=per_layer,
    )


def _norm_width(arch: Architecture):
    per_feature = 2 if arch.norm_bias else 1  # LayerNorm has a bias, RMSNorm only a scale

    def norm(width: int) -> int:
        return per_feature * width

    return norm


def _layer(arch: Architecture, index: int, is_moe: bool, norm) -> LayerParameters:
    if arch.ssm:
        return LayerParameters(index, ssm=_ssm(arch.ssm, arch.hidden_size),
                               norms=arch.norms_per_layer * norm(arch.hidden_size))
    parts: dict[str, int] = {"attention": _mla(arch, arch.mla, norm) if arch.mla else _attention(arch, norm),
                             "norms": arch.norms_per_layer * norm(arch.hidden_size)}
    h = arch.hidden_size
    moe = arch.moe
    if is_moe and moe:
        expert = _mlp(h, moe.expert_intermediate_size, gated=arch.mlp_gated, bias=False)
        parts["routed_experts"] = moe.num_experts * expert
        parts["active_routed_experts"] = moe.experts_per_token * expert
        shared = moe.num_shared_experts * _mlp(h, moe.shared_expert_intermediate_size, gated=arch.mlp_gated,
                                                bias=False)
        parts["shared_experts"] = shared + (h if moe.shared_expert_gate else 0)
        parts["router"] = h * moe.num_experts + (moe.num_experts if moe.router_bias else 0)
    elif arch.intermediate_size:
        parts["dense_mlp"] = _mlp(h, arch.intermediate_size, gated=arch.mlp_gated, bias=arch.mlp_bias)
    return LayerParameters(index, **parts)


def _mlp(hidden: int, width: int, *, gated: bool, bias: bool) -> int:
    # gated: gate and up (hidden -> width) plus down; plain: up plus down
    inputs = 2 if gated else 1
    weights = (inputs + 1) * hidden * width
    return weights + ((inputs * width + hidden) if bias else 0)


def _attention(arch: Architecture, norm) -> int:
    h, d = arch.hidden_size, arch.head_dim
    q, kv = arch.num_attention_heads * d, arch.num_key_value_heads * d
    total = h * (q + 2 * kv) + q * h
    if arch.qkv_bias:
        total += q + 2 * kv
    if arch.o_bias:
        total += h
    if arch.qk_norm in ("rmsnorm", "layernorm"):  # Llama-4's L2 q/k norm has no weights
        total += 2 * norm(d)
    return total


def _mla(arch: Architecture, mla: MLA, norm) -> int:
    h, heads = arch.hidden_size, arch.num_attention_heads
    q_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    if mla.q_lora_rank:  # q_a_proj, q_a_layernorm, q_b_proj
        total = h * mla.q_lora_rank + norm(mla.q_lora_rank) + mla.q_lora_rank * heads * q_head
    else:
        total = h * heads * q_head
    total += h * (mla.kv_lora_rank + mla.qk_rope_head_dim)  # kv_a_proj_with_mqa
    total += norm(mla.kv_lora_rank)  # kv_a_layernorm
    total += mla.kv_lora_rank * heads * (mla.qk_nope_head_dim + mla.v_head_dim)  # kv_b_proj
    total += heads * mla.v_head_dim * h  # o_proj
    if arch.o_bias:  # attention_bias covers q_a_proj, kv_a_proj_with_mqa and o_proj
        total += (mla.q_lora_rank if mla.q_lora_rank else 0) + mla.kv_lora_rank + mla.qk_rope_head_dim + h
    return total


def _ssm(ssm: SSM, h: int) -> int:
    inner, rank, state = ssm.intermediate_size, ssm.time_step_rank, ssm.state_size
    total = h * 2 * inner  # in_proj: x and the gate z
    total += inner * ssm.conv_kernel + (inner if ssm.conv_bias else 0)  # depthwise conv1d
    total += inner * (rank + 2 * state)  # x_proj -> dt, B, C
    total += rank * inner + inner  # dt_proj (always biased)
    total += inner * state + inner  # A_log and D
    total += inner * h  # out_proj
    if ssm.proj_bias:
        total += 2 * inner + h
    return total
