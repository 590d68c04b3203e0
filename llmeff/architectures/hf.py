"""Parsing Hugging Face config.json documents into Architecture values.

Field names and defaults follow the transformers configuration classes; the per-model_type
differences live in the ``RULES`` table of ``llmeff.architectures.rules``. Core shape keys
(layers, hidden size, heads, vocabulary, dense MLP width) are required even where a transformers
class has a default: a checkpoint's config.json always writes them, and a silent default (LlamaConfig's
hidden_size 4096, say) would model a different network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmeff.architectures.fields import ConfigFields, one_line
from llmeff.architectures.model import SSM, Architecture
from llmeff.architectures.rules import CANONICAL, GENERIC, NAMES, RULES, Rules, kv_heads
from llmeff.errors import InvalidInputError


def parse_hf_config(config: object, *, where: str = "config.json") -> Architecture:
    """Parse one config.json document (already decoded); bad input raises InvalidInputError."""
    return _parse(config, one_line(str(where), limit=None))


def load_config_file(path: str | Path) -> Architecture:
    """Read a config.json file and parse it; errors name the path."""
    where = one_line(str(path), limit=None)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # tolerate a Windows BOM
    except FileNotFoundError:
        raise InvalidInputError("file not found", where=where) from None
    except UnicodeDecodeError:
        raise InvalidInputError("not valid JSON: the file is not UTF-8 text", where=where) from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read the file ({one_line(exc.strerror or str(exc))})",
                                where=where) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
                                where=where) from None
    except RecursionError:
        raise InvalidInputError("not usable JSON: nested too deeply", where=where) from None
    except ValueError as exc:  # e.g. an integer literal longer than Python's digit limit
        raise InvalidInputError(f"not usable JSON ({one_line(str(exc))})", where=where) from None
    return Architecture.from_hf_config(document, where=where)


def config_from_model_entry(entry: Mapping[str, object]) -> dict[str, object]:
    """The config.json document of a data/models/*.toml entry.

    TOML has no null, so keys that a real config.json sets to null where the transformers default
    is not null (Mistral-7B-v0.3's sliding_window, DeepSeek-V2-Lite's q_lora_rank) are listed in
    the entry's ``config_null_keys`` and restored here.
    """
    config = dict(entry.get("config") or {})  # type: ignore[call-overload]
    for key in entry.get("config_null_keys") or ():  # type: ignore[union-attr]
        config[str(key)] = None
    return config


def _parse(document: object, where: str) -> Architecture:
    if not isinstance(document, Mapping):
        raise InvalidInputError(f"expected a JSON object, got {ConfigFields.describe(document)}", where=where)
    top = ConfigFields(document, where)
    model_type = _model_type(top)
    cfg = top
    if document.get("text_config") is not None and not top.has(NAMES["layers"]):
        # multimodal checkpoints (Llama-4) nest the language model's config under text_config
        cfg = top.nested("text_config")
        model_type_text = cfg.text("model_type", default=model_type)
    else:
        model_type_text = model_type
    if model_type_text == "mamba":
        return _mamba(cfg, model_type)
    known = model_type_text if model_type_text in RULES else model_type if model_type in RULES else None
    rules = RULES[known] if known else GENERIC
    parsed_as = CANONICAL.get(known, known) if known else "generic"
    f = _transformer_fields(cfg, rules, model_type, parsed_as)
    if rules.hook:
        rules.hook(cfg, f)
    f["tie_word_embeddings"] = cfg.flag("tie_word_embeddings",
                                        default=top.flag("tie_word_embeddings", default=rules.tie))
    return Architecture(**f)


def _model_type(top: ConfigFields) -> str:
    if not top.has(("model_type",)) and top.has(("ssm_cfg", "d_state")):
        return "mamba"  # state-spaces/mamba checkpoints predate transformers and carry no model_type
    model_type = top.text("model_type", default=ConfigFields.REQUIRED)
    if not model_type.strip():
        raise top.error("model_type", "must not be empty")
    return model_type


def _transformer_fields(cfg: ConfigFields, rules: Rules, model_type: str, parsed_as: str) -> dict[str, Any]:
    names = rules.names
    layers = cfg.integer(names["layers"], maximum=ConfigFields.MAX_LAYERS)
    hidden = cfg.integer(names["hidden"])
    heads = cfg.integer(names["heads"])
    head_dim = cfg.integer("head_dim", default=rules.head_dim, nullable=True)
    if head_dim is None and not rules.mla:
        if hidden % heads:
            raise cfg.error(cfg.present_key(names["heads"]),
                            f"{heads} attention heads do not divide hidden size {hidden} and head_dim is not given")
        head_dim = hidden // heads
    if rules.ffn_multiple:
        inter = cfg.integer(names["intermediate"], default=None, nullable=True) or rules.ffn_multiple * hidden
    else:
        inter = cfg.integer(names["intermediate"])
    qkv_bias = cfg.flag(rules.bias_key, default=rules.qkv_bias) if rules.bias_key else rules.qkv_bias
    o_bias = cfg.flag(rules.bias_key, default=rules.o_bias) if rules.bias_key else rules.o_bias
    position = rules.position
    # a learned position table needs a size, so null is only allowed where nothing is learned
    max_pos = cfg.integer(names["max_pos"], default=rules.max_pos_default, nullable=position != "learned")
    f: dict[str, Any] = dict(
        model_type=model_type, parsed_as=parsed_as, num_layers=layers, hidden_size=hidden,
        vocab_size=cfg.integer("vocab_size"), num_attention_heads=heads,
        num_key_value_heads=kv_heads(cfg, names["kv_heads"], heads), head_dim=head_dim or 0,
        intermediate_size=inter, max_position_embeddings=max_pos, mlp_gated=rules.gated,
        activation=cfg.text(names["act"], default=rules.activation), norm=rules.norm,
        norm_bias=rules.norm == "layernorm", norms_per_layer=rules.norms_per_layer,
        parallel_attn_mlp=rules.parallel, qkv_bias=qkv_bias, o_bias=o_bias,
        mlp_bias=cfg.flag(rules.mlp_bias_key, default=rules.mlp_bias) if rules.mlp_bias_key else rules.mlp_bias,
        lm_head_bias=rules.lm_head_bias, qk_norm=rules.qk_norm, position_embedding=position,
        position_table_rows=(max_pos or 0) if position == "learned" else 0, embedding_dim=hidden,
    )
    if position == "rope":
        f["rope_theta"] = cfg.number("rope_theta", default=10000.0, nullable=True)
        f["rope_scaling_type"] = cfg.rope_scaling_type()
    f.update(_window(cfg, rules, layers))
    return f


def _window(cfg: ConfigFields, rules: Rules, layers: int) -> dict[str, Any]:
    if rules.window == "none":
        return {}
    if rules.window == "qwen" and not cfg.flag("use_sliding_window", default=False):
        return {}
    window = cfg.integer("sliding_window", default=rules.window_default, nullable=True)
    if window is None:
        return {}
    if rules.window == "alternate":  # Gemma-2: even layers local, odd layers global
        indices = tuple(range(0, layers, 2))
    elif rules.window == "qwen":  # Qwen2: the first max_window_layers layers stay global
        first = cfg.integer("max_window_layers", default=28, minimum=0)
        indices = tuple(range(min(first, layers), layers))
    else:
        indices = tuple(range(layers))
    return {"sliding_window": window, "sliding_window_layers": indices}


def _mamba(cfg: ConfigFields, model_type: str) -> Architecture:
    # transformers' MambaConfig keys first, then the original mamba_ssm names (d_model, ssm_cfg)
    inner = cfg.nested_or_none("ssm_cfg") or cfg
    if inner.text("layer", default="Mamba1") != "Mamba1":
        raise inner.error("layer", "only Mamba-1 mixers are supported")
    hidden = cfg.integer(("hidden_size", "d_model"))
    vocab = cfg.integer("vocab_size")
    pad = cfg.integer("pad_vocab_size_multiple", default=None, nullable=True)
    if pad:  # mamba_ssm pads the embedding table to a multiple of this
        vocab = -(-vocab // pad) * pad
    expand = inner.integer("expand", default=2)
    inner_width = cfg.integer("intermediate_size", default=None, nullable=True) or expand * hidden
    ssm = SSM(
        state_size=inner.integer(("state_size", "d_state"), default=16),
        conv_kernel=inner.integer(("conv_kernel", "d_conv"), default=4),
        expand=expand,
        time_step_rank=inner.integer_or_auto(("time_step_rank", "dt_rank"), auto=-(-hidden // 16)),
        intermediate_size=inner_width,
        conv_bias=inner.flag(("use_conv_bias", "conv_bias"), default=True),
        proj_bias=inner.flag(("use_bias", "bias"), default=False),
    )
    rms = cfg.flag("rms_norm", default=True)
    return Architecture(
        model_type=model_type, parsed_as="mamba", num_layers=cfg.integer(("num_hidden_layers", "n_layer"),
                                                                         maximum=ConfigFields.MAX_LAYERS),
        hidden_size=hidden, vocab_size=vocab, mlp_gated=False, activation=cfg.text("hidden_act", default="silu"),
        norm="rmsnorm" if rms else "layernorm", norm_bias=not rms, norms_per_layer=1, position_embedding="none",
        embedding_dim=hidden, tie_word_embeddings=cfg.flag("tie_word_embeddings", default=True), ssm=ssm,
    )
