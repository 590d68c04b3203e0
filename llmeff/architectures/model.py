"""The Architecture value: a decoder LLM's shape, as far as cost modelling needs it.

Built by ``Architecture.from_hf_config`` (see ``llmeff.architectures.hf``); read by the parameter
counter and the roofline cost model. Frozen: derive variants with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class MoE:
    """Mixture-of-experts feed-forward: which layers route, and how wide the experts are."""

    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    layer_indices: tuple[int, ...]
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0  # width of each shared expert
    shared_expert_gate: bool = False  # Qwen2-MoE scales the shared expert by a hidden->1 gate
    router: str = "softmax"
    router_bias: bool = False  # DeepSeek-V3 per-expert score-correction bias


@dataclass(frozen=True)
class MLA:
    """DeepSeek multi-head latent attention; q_lora_rank 0 means queries are not compressed."""

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


@dataclass(frozen=True)
class SSM:
    """Mamba (selective state-space) mixer that replaces attention and MLP in every layer."""

    state_size: int
    conv_kernel: int
    expand: int
    time_step_rank: int
    intermediate_size: int
    conv_bias: bool = True
    proj_bias: bool = False


@dataclass(frozen=True)
class Architecture:
    """A decoder-only language model's shape, as far as cost modelling needs it."""

    model_type: str
    parsed_as: str  # the rules entry used (llmeff.architectures.rules), or "generic" for unknown types
    num_layers: int
    hidden_size: int
    vocab_size: int
    num_attention_heads: int = 0
    num_key_value_heads: int = 0
    head_dim: int = 0  # query/key head size (MLA: nope + rope part)
    intermediate_size: int | None = None  # dense MLP width; None when no layer has a dense MLP
    max_position_embeddings: int | None = None
    tie_word_embeddings: bool = False
    mlp_gated: bool = True
    activation: str = "silu"
    norm: str = "rmsnorm"
    norm_bias: bool = False
    norms_per_layer: int = 2
    final_norm: bool = True
    parallel_attn_mlp: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    lm_head_bias: bool = False
    qk_norm: str | None = None  # "rmsnorm"/"layernorm" carry weights per head_dim, "l2" none
    position_embedding: str = "rope"  # rope | learned | alibi | none
    position_table_rows: int = 0
    rotary_fraction: float = 1.0
    rope_theta: float | None = None
    rope_scaling_type: str | None = None
    sliding_window: int | None = None
    sliding_window_layers: tuple[int, ...] = ()
    attention_chunk_size: int | None = None
    chunked_attention_layers: tuple[int, ...] = ()
    no_rope_layers: tuple[int, ...] = ()
    embedding_dim: int = 0  # OPT-350m projects a narrower embedding; elsewhere == hidden_size
    embedding_norm: bool = False  # BLOOM normalises the word embeddings
    moe: MoE | None = None
    mla: MLA | None = None
    ssm: SSM | None = None

    @classmethod
    def from_hf_config(cls, config: Mapping[str, object], *, where: str = "config.json") -> Architecture:
        """Parse a config.json document; any bad input raises InvalidInputError naming the field."""
        from llmeff.architectures.hf import parse_hf_config  # the parser builds this class

        return parse_hf_config(config, where=where)

    @property
    def kv_heads(self) -> int:
        return self.num_key_value_heads

    @property
    def v_head_dim(self) -> int:
        """Value head size (MLA's differs from the query/key head size)."""
        return self.mla.v_head_dim if self.mla else self.head_dim

    @property
    def is_moe(self) -> bool:
        return bool(self.moe_layer_indices)

    @property
    def moe_layer_indices(self) -> tuple[int, ...]:
        return self.moe.layer_indices if self.moe else ()

    @property
    def attention_layer_indices(self) -> tuple[int, ...]:
        return () if self.ssm else tuple(range(self.num_layers))

    @property
    def kv_cache_elements_per_token_per_layer(self) -> int:
        """Cached values per token per attention layer (K and V; MLA caches the latent + rope key)."""
        if self.ssm:
            return 0  # Mamba keeps a fixed-size recurrent state instead
        if self.mla:
            return self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        return 2 * self.num_key_value_heads * self.head_dim

    @property
    def ssm_state_elements_per_layer(self) -> int:
        """Recurrent state per sequence per layer (SSM state + convolution tail); 0 for attention."""
        if not self.ssm:
            return 0
        inner = self.ssm.intermediate_size
        return inner * self.ssm.state_size + inner * (self.ssm.conv_kernel - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of every field plus the derived properties the cost model reads."""
        out = _plain(self)
        for name in ("is_moe", "moe_layer_indices", "kv_cache_elements_per_token_per_layer",
                     "ssm_state_elements_per_layer"):
            out[name] = _plain(getattr(self, name))
        return out


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
