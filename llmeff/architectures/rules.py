"""Per-model_type rules for reading Hugging Face configs: key names, defaults, and small hooks.

Each ``Rules`` entry states how one transformers model family lays out its config (which key
holds the layer count, which biases exist, how the sliding window applies, ...); a hook handles
the few parts a table cannot say (MoE layer placement, MLA, Falcon's attention variants).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmeff.architectures.fields import ConfigFields
from llmeff.architectures.model import MLA, MoE

# Key names are tried in order; errors name the first one.

NAMES: dict[str, tuple[str, ...]] = {
    "layers": ("num_hidden_layers", "n_layer", "n_layers", "num_layers"),
    "hidden": ("hidden_size", "n_embd", "n_embed", "d_model"),
    "heads": ("num_attention_heads", "n_head", "n_heads"),
    "kv_heads": ("num_key_value_heads", "num_kv_heads", "n_head_kv"),
    "intermediate": ("intermediate_size", "ffn_dim", "ffn_hidden_size", "n_inner"),
    "max_pos": ("max_position_embeddings", "n_positions"),
    "act": ("hidden_act", "hidden_activation", "activation_function", "activation"),
}
_GPT_NAMES = {**NAMES, "layers": ("n_layer", "num_hidden_layers"), "hidden": ("n_embd", "hidden_size"),
              "heads": ("n_head", "num_attention_heads"), "intermediate": ("n_inner",),
              "max_pos": ("n_positions", "max_position_embeddings"), "act": ("activation_function",)}
_BLOOM_NAMES = {**NAMES, "layers": ("n_layer", "num_hidden_layers"), "heads": ("n_head", "num_attention_heads"),
                "hidden": ("hidden_size", "n_embed")}
_FALCON_NAMES = {**NAMES, "kv_heads": ("num_kv_heads", "n_head_kv"), "intermediate": ("ffn_hidden_size",)}
_OPT_NAMES = {**NAMES, "intermediate": ("ffn_dim",), "act": ("activation_function",)}
_GEMMA_NAMES = {**NAMES, "act": ("hidden_activation", "hidden_act")}

# A hook reads the keys the table cannot describe and completes (or corrects) the fields under
# construction; the dict is the parser's local builder, never caller data.
Hook = Callable[[ConfigFields, dict[str, Any]], None]


@dataclass(frozen=True)
class Rules:
    """How one transformers model family lays out its config.json, and its class defaults."""

    names: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: NAMES)
    gated: bool = True
    activation: str = "silu"
    norm: str = "rmsnorm"
    norms_per_layer: int = 2
    parallel: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    bias_key: str | None = "attention_bias"  # switches the q/k/v/o biases; None: fixed per type
    mlp_bias: bool = False
    mlp_bias_key: str | None = "mlp_bias"
    lm_head_bias: bool = False
    tie: bool = False
    position: str = "rope"
    max_pos_default: int | None = None  # only where a learned table's size depends on it
    head_dim: int | None = None  # class default of head_dim when the key is absent
    ffn_multiple: int | None = None  # MLP width = multiple * hidden when no width key is set
    window: str = "none"  # how sliding_window applies: none | all | qwen | alternate
    window_default: int | None = None
    qk_norm: str | None = None
    mla: bool = False
    hook: Hook | None = None


def _top_k(cfg: ConfigFields, key: str, default: int | None, experts: int) -> int:
    top_k = cfg.integer(key, default=default if default is not None else ConfigFields.REQUIRED)
    if top_k > experts:
        raise cfg.error(key, f"{top_k} experts per token exceeds the {experts} experts available")
    return top_k


def kv_heads(cfg: ConfigFields, keys: tuple[str, ...], heads: int) -> int:
    kv = cfg.integer(keys, default=None, nullable=True)
    if kv is None:
        return heads
    if heads % kv:
        raise cfg.error(cfg.present_key(keys), f"{kv} key/value heads do not divide the {heads} attention heads")
    return kv


def _mixtral(cfg: ConfigFields, f: dict[str, Any]) -> None:
    experts = cfg.integer("num_local_experts", default=8)
    top_k = _top_k(cfg, "num_experts_per_tok", 2, experts)
    # Mixtral has no dense MLP: its intermediate_size is the width of each expert
    f["moe"] = MoE(experts, top_k, f["intermediate_size"], tuple(range(f["num_layers"])))
    f["intermediate_size"] = None


def _qwen_moe(cfg: ConfigFields, f: dict[str, Any]) -> None:
    v2 = f["parsed_as"] == "qwen2_moe"
    layers = f["num_layers"]
    experts = cfg.integer("num_experts", default=60 if v2 else 128, minimum=0)
    if experts == 0:
        return
    top_k = _top_k(cfg, "num_experts_per_tok", 4 if v2 else 8, experts)
    width = cfg.integer("moe_intermediate_size", default=1408 if v2 else 768)
    step = cfg.integer("decoder_sparse_step", default=1)
    dense_only = set(cfg.layer_list("mlp_only_layers", layers) or ())
    indices = tuple(i for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    shared = cfg.integer("shared_expert_intermediate_size", default=5632, minimum=0) if v2 else 0
    f["moe"] = MoE(experts, top_k, width, indices, num_shared_experts=1 if shared else 0,
                   shared_expert_intermediate_size=shared, shared_expert_gate=bool(shared))


def _deepseek(cfg: ConfigFields, f: dict[str, Any]) -> None:
    v3 = f["parsed_as"] == "deepseek_v3"
    q_lora = cfg.integer("q_lora_rank", default=1536, minimum=0, nullable=True) or 0
    mla = MLA(q_lora, cfg.integer("kv_lora_rank", default=512), cfg.integer("qk_nope_head_dim", default=128),
              cfg.integer("qk_rope_head_dim", default=64), cfg.integer("v_head_dim", default=128))
    f.update(mla=mla, head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim)
    routed = cfg.integer("n_routed_experts", default=256 if v3 else None, nullable=True)
    if not routed:
        return
    top_k = _top_k(cfg, "num_experts_per_tok", 8 if v3 else None, routed)
    first_dense = cfg.integer("first_k_dense_replace", default=3 if v3 else 0, minimum=0)
    every = cfg.integer("moe_layer_freq", default=1)
    width = cfg.integer("moe_intermediate_size", default=2048 if v3 else 1407)
    shared = cfg.integer("n_shared_experts", default=1 if v3 else None, minimum=0, nullable=True) or 0
    router = cfg.text("scoring_func", default="sigmoid" if v3 else "softmax")
    # transformers' DeepseekV3 router always holds the correction bias; V2 remote code only for noaux_tc
    bias = v3 or cfg.text("topk_method", default="greedy") == "noaux_tc"
    indices = tuple(i for i in range(first_dense, f["num_layers"]) if i % every == 0)
    f["moe"] = MoE(routed, top_k, width, indices, num_shared_experts=shared,
                   shared_expert_intermediate_size=width if shared else 0, router=router, router_bias=bias)


def _llama4(cfg: ConfigFields, f: dict[str, Any]) -> None:
    layers = f["num_layers"]
    experts = cfg.integer("num_local_experts", default=16)
    top_k = _top_k(cfg, "num_experts_per_tok", 1, experts)
    step = cfg.integer("interleave_moe_layer_step", default=1)
    indices = cfg.layer_list("moe_layers", layers)
    if indices is None:
        indices = tuple(range(step - 1, layers, step))
    # routed and shared experts both use intermediate_size; dense layers use intermediate_size_mlp
    width = f["intermediate_size"]
    f["moe"] = MoE(experts, top_k, width, tuple(sorted(set(indices))), num_shared_experts=1,
                   shared_expert_intermediate_size=width, router="sigmoid")
    f["intermediate_size"] = cfg.integer("intermediate_size_mlp", default=16384)
    uses_rope = cfg.flag_list("no_rope_layers", layers)  # 1 = this layer applies RoPE
    if uses_rope is None:
        interval = cfg.integer("no_rope_layer_interval", default=4)
        uses_rope = tuple((i + 1) % interval != 0 for i in range(layers))
    f["no_rope_layers"] = tuple(i for i in range(layers) if not uses_rope[i])
    chunk = cfg.integer("attention_chunk_size", default=8192, nullable=True)
    if chunk:  # iRoPE: RoPE layers attend within fixed chunks, NoPE layers globally
        f["attention_chunk_size"] = chunk
        f["chunked_attention_layers"] = tuple(i for i in range(layers) if uses_rope[i])
    f["qk_norm"] = "l2" if cfg.flag("use_qk_norm", default=True) else None


def _falcon(cfg: ConfigFields, f: dict[str, Any]) -> None:
    new_arch = cfg.flag("new_decoder_architecture", default=f["model_type"] == "RefinedWeb")
    heads = f["num_attention_heads"]
    if new_arch:
        f["num_key_value_heads"] = kv_heads(cfg, _FALCON_NAMES["kv_heads"], heads)
    elif cfg.flag("multi_query", default=True):
        f["num_key_value_heads"] = 1
    else:
        f["num_key_value_heads"] = heads
    f["parallel_attn_mlp"] = parallel = cfg.flag("parallel_attn", default=True)
    if new_arch:
        f["norms_per_layer"] = cfg.integer("num_ln_in_parallel_attn", default=2, nullable=True) or 2
    else:
        f["norms_per_layer"] = 1 if parallel else 2
    if cfg.flag("alibi", default=False):
        f.update(position_embedding="alibi", rope_theta=None, rope_scaling_type=None)


def _opt(cfg: ConfigFields, f: dict[str, Any]) -> None:
    f["embedding_dim"] = cfg.integer("word_embed_proj_dim", default=None, nullable=True) or f["hidden_size"]
    f["final_norm"] = (cfg.flag("do_layer_norm_before", default=True)
                       and not cfg.flag("_remove_final_layer_norm", default=False))
    f["position_table_rows"] += 2  # OPTLearnedPositionalEmbedding reserves two offset rows


def _phi(cfg: ConfigFields, f: dict[str, Any]) -> None:
    if f["parsed_as"] == "phi-msft":
        rotary = cfg.integer("rotary_dim", default=32)
        f["rotary_fraction"] = min(1.0, rotary / f["head_dim"])
        return
    f["rotary_fraction"] = cfg.number("partial_rotary_factor", default=0.5, maximum=1.0)
    if cfg.flag("qk_layernorm", default=False):
        f["qk_norm"] = "layernorm"


def _gptj(cfg: ConfigFields, f: dict[str, Any]) -> None:
    rotary = cfg.integer("rotary_dim", default=64, nullable=True)
    f["rotary_fraction"] = 1.0 if rotary is None else min(1.0, rotary / f["head_dim"])


def _bloom(cfg: ConfigFields, f: dict[str, Any]) -> None:
    f["embedding_norm"] = True


_LAYERNORM_DECODER = dict(gated=False, norm="layernorm", qkv_bias=True, o_bias=True, mlp_bias=True,
                          bias_key=None, mlp_bias_key=None, tie=True, ffn_multiple=4)
_PHI = dict(gated=False, activation="gelu_new", norm="layernorm", norms_per_layer=1, parallel=True,
            qkv_bias=True, o_bias=True, bias_key=None, mlp_bias=True, mlp_bias_key=None,
            lm_head_bias=True, hook=_phi)
_FALCON = Rules(names=_FALCON_NAMES, gated=False, activation="gelu", norm="layernorm", bias_key="bias",
                 mlp_bias_key="bias", tie=True, ffn_multiple=4, hook=_falcon)
_DEEPSEEK = Rules(mla=True, hook=_deepseek)
_LLAMA4 = Rules(head_dim=128, hook=_llama4)

RULES: dict[str, Rules] = {
    "llama": Rules(),
    "granite": Rules(),
    "baichuan": Rules(bias_key=None, mlp_bias_key=None),
    "mistral": Rules(window="all", window_default=4096),
    "mixtral": Rules(window="all", hook=_mixtral),
    "qwen2": Rules(qkv_bias=True, bias_key=None, window="qwen"),
    "qwen2_moe": Rules(qkv_bias=True, bias_key=None, window="qwen", hook=_qwen_moe),
    "qwen3": Rules(head_dim=128, qk_norm="rmsnorm", window="qwen"),
    "qwen3_moe": Rules(qk_norm="rmsnorm", window="qwen", hook=_qwen_moe),
    "gemma": Rules(names=_GEMMA_NAMES, activation="gelu_pytorch_tanh", tie=True, head_dim=256),
    "gemma2": Rules(names=_GEMMA_NAMES, activation="gelu_pytorch_tanh", tie=True, head_dim=256,
                     norms_per_layer=4, window="alternate", window_default=4096),
    "phi": Rules(**_PHI),
    "phi-msft": Rules(names=_GPT_NAMES, ffn_multiple=4, **_PHI),
    "phi3": Rules(window="all"),
    "opt": Rules(names=_OPT_NAMES, **{**_LAYERNORM_DECODER, "ffn_multiple": None, "bias_key": "enable_bias",
                                       "mlp_bias_key": "enable_bias"},
                  activation="relu", position="learned", max_pos_default=2048, hook=_opt),
    "falcon": _FALCON,
    "RefinedWeb": _FALCON,
    "RefinedWebModel": _FALCON,
    "gpt2": Rules(names=_GPT_NAMES, **_LAYERNORM_DECODER, activation="gelu_new", position="learned",
                   max_pos_default=1024),
    "gptj": Rules(names=_GPT_NAMES, gated=False, activation="gelu_new", norm="layernorm", norms_per_layer=1,
                   parallel=True, bias_key=None, mlp_bias=True, mlp_bias_key=None, lm_head_bias=True,
                   ffn_multiple=4, hook=_gptj),
    "bloom": Rules(names=_BLOOM_NAMES, **_LAYERNORM_DECODER, activation="gelu", position="alibi",
                    hook=_bloom),
    "deepseek_v2": _DEEPSEEK,
    "deepseek_v3": _DEEPSEEK,
    "llama4": _LLAMA4,
    "llama4_text": _LLAMA4,
}
GENERIC = Rules(window="all")
# model_types that share another's rules; parsed_as reports the canonical name
CANONICAL = {"llama4_text": "llama4", "RefinedWeb": "falcon", "RefinedWebModel": "falcon"}
