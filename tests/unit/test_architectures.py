"""Parsing Hugging Face config.json documents: shapes, derived properties, errors, shipped entries.

Expected values come from the fixture configs (written from the reference fact sheet,
/work/shared/reference/models.yaml) and from the transformers rules they follow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter
import tomllib
from pathlib import Path

import pytest

from llmeff.architectures import Architecture, config_from_model_entry, load_config_file
from llmeff.errors import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "data" / "configs"
MODELS = ROOT / "data" / "models"


def arch(name: str) -> Architecture:
    return load_config_file(CONFIGS / name)


def parse(**config) -> Architecture:
    return Architecture.from_hf_config(config, where="cfg.json")


LLAMA = dict(model_type="llama", num_hidden_layers=32, hidden_size=4096, intermediate_size=11008,
             num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)
MIXTRAL = {**LLAMA, "model_type": "mixtral", "intermediate_size": 14336, "num_key_value_heads": 8,
           "num_local_experts": 8, "num_experts_per_tok": 2}


# ---------------------------------------------------------------------------------------------- shapes


def test_llama_2_7b_shape():
    a = arch("llama-2-7b.json")
    assert (a.model_type, a.parsed_as, a.num_layers, a.hidden_size, a.intermediate_size) == (
        "llama", "llama", 32, 4096, 11008)
    assert (a.num_attention_heads, a.kv_heads, a.head_dim, a.vocab_size) == (32, 32, 128, 32000)
    assert a.mlp_gated and a.norm == "rmsnorm" and a.norms_per_layer == 2 and not a.tie_word_embeddings
    assert a.position_embedding == "rope" and a.rope_theta == 10000.0 and a.max_position_embeddings == 4096
    assert not a.is_moe and a.moe_layer_indices == () and a.sliding_window is None
    assert a.kv_cache_elements_per_token_per_layer == 2 * 32 * 128


def test_head_dim_may_exceed_hidden_over_heads():
    gemma = arch("gemma-7b.json")  # 16 heads of 256 = 4096 > hidden 3072
    assert (gemma.head_dim, gemma.num_attention_heads, gemma.hidden_size) == (256, 16, 3072)
    assert gemma.tie_word_embeddings  # GemmaConfig default, the key is absent
    qwen3 = arch("qwen3-30b-a3b.json")
    assert qwen3.head_dim * qwen3.num_attention_heads == 4096 > qwen3.hidden_size
    assert qwen3.qk_norm == "rmsnorm"


def test_gqa_and_mqa_kv_heads():
    assert arch("mistral-7b-v0.1.json").kv_cache_elements_per_token_per_layer == 2 * 8 * 128
    falcon = arch("falcon-7b.json")  # multi_query: one KV head for 71 query heads
    assert (falcon.kv_heads, falcon.head_dim, falcon.kv_cache_elements_per_token_per_layer) == (1, 64, 128)
    assert falcon.parallel_attn_mlp and falcon.norms_per_layer == 1 and falcon.intermediate_size == 4 * 4544


def test_falcon_40b_refinedweb_names():
    a = arch("falcon-40b-refinedweb.json")
    assert (a.parsed_as, a.model_type, a.num_layers, a.num_attention_heads, a.kv_heads) == (
        "falcon", "RefinedWeb", 60, 128, 8)
    assert a.norms_per_layer == 2  # new decoder architecture: ln_attn and ln_mlp


def test_biases_and_parallel_blocks():
    qwen = arch("qwen2-7b.json")
    assert qwen.qkv_bias and not qwen.o_bias and not qwen.mlp_bias
    phi = arch("phi-2.json")
    assert phi.parallel_attn_mlp and phi.qkv_bias and phi.o_bias and phi.mlp_bias and phi.lm_head_bias
    assert phi.kv_heads == 32 and phi.rotary_fraction == 0.4 and not phi.mlp_gated and phi.norm_bias
    gptj = arch("gpt-j-6b.json")
    assert gptj.parallel_attn_mlp and not gptj.qkv_bias and gptj.mlp_bias and gptj.lm_head_bias
    assert gptj.rotary_fraction == 64 / 256 and gptj.intermediate_size == 4 * 4096
    opt = arch("opt-6.7b.json")
    assert opt.qkv_bias and opt.o_bias and opt.mlp_bias and opt.activation == "relu" and not opt.mlp_gated


def test_position_tables_and_alibi():
    assert arch("opt-6.7b.json").position_table_rows == 2048 + 2  # OPT's offset of two rows
    gpt2 = arch("gpt2.json")
    assert (gpt2.position_embedding, gpt2.position_table_rows, gpt2.hidden_size) == ("learned", 1024, 768)
    bloom = arch("bloom-176b.json")
    assert (bloom.position_embedding, bloom.position_table_rows, bloom.rope_theta) == ("alibi", 0, None)
    assert bloom.embedding_norm and bloom.max_position_embeddings is None
    assert Architecture.from_hf_config({**json.loads((CONFIGS / "bloom-176b.json").read_text()),
                                        "n_embed": 14336}).hidden_size == 14336


def test_sliding_windows():
    v01, v03 = arch("mistral-7b-v0.1.json"), arch("mistral-7b-v0.3.json")
    assert v01.sliding_window == 4096 and v01.sliding_window_layers == tuple(range(32))
    assert v03.sliding_window is None and v03.sliding_window_layers == ()  # explicit null: no window
    # MistralConfig's default window applies when the key is absent
    assert parse(**{**LLAMA, "model_type": "mistral"}).sliding_window == 4096
    gemma2 = arch("gemma-2-9b.json")
    assert gemma2.sliding_window_layers == tuple(range(0, 42, 2)) and gemma2.norms_per_layer == 4
    assert arch("phi-3-mini-4k.json").sliding_window == 2047
    assert arch("qwen2-7b.json").sliding_window is None  # use_sliding_window false
    qwen_on = parse(**{**LLAMA, "model_type": "qwen2", "use_sliding_window": True, "sliding_window": 4096,
                       "max_window_layers": 28})
    assert qwen_on.sliding_window_layers == (28, 29, 30, 31)


def test_moe_layer_placement():
    assert arch("mixtral-8x7b.json").moe_layer_indices == tuple(range(32))
    assert arch("mixtral-8x7b.json").intermediate_size is None  # no dense MLP in Mixtral
    v3 = arch("deepseek-v3.json")
    assert v3.moe_layer_indices == tuple(range(3, 61))  # first_k_dense_replace 3
    assert (v3.moe.num_experts, v3.moe.experts_per_token, v3.moe.num_shared_experts) == (256, 8, 1)
    assert v3.moe.router == "sigmoid" and v3.moe.router_bias
    lite = arch("deepseek-v2-lite.json")
    assert lite.moe_layer_indices == tuple(range(1, 27)) and lite.moe.num_shared_experts == 2
    sparse = parse(**{**LLAMA, "model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
                      "moe_intermediate_size": 512, "decoder_sparse_step": 2, "mlp_only_layers": [3]})
    assert sparse.moe_layer_indices == tuple(i for i in range(1, 32, 2) if i != 3)
    assert parse(**{**LLAMA, "model_type": "qwen3_moe", "num_experts": 0}).is_moe is False


def test_llama4_reads_text_config_of_a_multimodal_config():
    a = arch("llama-4-scout.json")
    assert (a.model_type, a.parsed_as, a.num_layers, a.hidden_size, a.head_dim) == ("llama4", "llama4", 48, 5120, 128)
    assert a.moe_layer_indices == tuple(range(48))
    assert (a.moe.num_experts, a.moe.experts_per_token, a.moe.num_shared_experts) == (16, 1, 1)
    assert a.moe.shared_expert_intermediate_size == a.moe.expert_intermediate_size == 8192
    assert a.intermediate_size == 16384  # the dense width, unused when every layer is MoE
    assert a.no_rope_layers == tuple(range(3, 48, 4))
    assert a.attention_chunk_size == 8192 and len(a.chunked_attention_layers) == 36
    assert a.qk_norm == "l2" and a.rope_scaling_type == "llama3"


def test_llama4_interleaved_moe_layers():
    doc = json.loads((CONFIGS / "llama-4-scout.json").read_text())
    doc["text_config"] = {**doc["text_config"], "interleave_moe_layer_step": 2, "num_local_experts": 128}
    a = Architecture.from_hf_config(doc)
    assert a.moe_layer_indices == tuple(range(1, 48, 2))  # Maverick: odd layers MoE


def test_mla_and_mamba_kv_cache():
    assert arch("deepseek-v2-lite.json").kv_cache_elements_per_token_per_layer == 512 + 64
    assert arch("deepseek-v2-lite.json").mla.q_lora_rank == 0  # null: no query compression
    assert arch("deepseek-v3.json").mla.q_lora_rank == 1536
    mamba = arch("mamba-2.8b-ssm.json")
    assert (mamba.model_type, mamba.vocab_size, mamba.num_layers) == ("mamba", 50280, 64)
    assert (mamba.ssm.intermediate_size, mamba.ssm.time_step_rank, mamba.ssm.state_size) == (5120, 160, 16)
    assert mamba.kv_cache_elements_per_token_per_layer == 0 and mamba.attention_layer_indices == ()
    assert mamba.ssm_state_elements_per_layer == 5120 * 16 + 5120 * 3


def test_generic_model_type_is_recorded():
    a = parse(**{**LLAMA, "model_type": "my_llama_clone", "sliding_window": 1024})
    assert (a.model_type, a.parsed_as, a.sliding_window) == ("my_llama_clone", "generic", 1024)


def test_architecture_is_frozen_and_serialisable():
    a = arch("deepseek-v3.json")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.hidden_size = 1  # type: ignore[misc]
    data = json.loads(json.dumps(a.to_dict()))
    assert data["moe"]["num_experts"] == 256 and data["kv_cache_elements_per_token_per_layer"] == 576
    assert data["moe_layer_indices"][0] == 3 and data["is_moe"] is True


# ---------------------------------------------------------------------------------------------- errors


def message(config: object) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as info:
        Architecture.from_hf_config(config, where="cfg.json")  # type: ignore[arg-type]
    assert str(info.value).splitlines() == [str(info.value)]
    return info.value


def test_missing_required_field():
    err = message({k: v for k, v in LLAMA.items() if k != "hidden_size"})
    assert str(err) == "cfg.json: field 'hidden_size': required field is missing"
    assert (err.where, err.field) == ("cfg.json", "hidden_size")
    assert str(message({**LLAMA, "model_type": None})) == "cfg.json: field 'model_type': must not be null"
    gpt2 = message({"model_type": "gpt2", "n_layer": 12, "n_head": 12, "vocab_size": 50257})
    assert str(gpt2) == "cfg.json: field 'n_embd': required field is missing"


def test_wrong_types():
    assert str(message({**LLAMA, "hidden_size": "4096"})) == (
        "cfg.json: field 'hidden_size': expected an integer, got a string ('4096')")
    assert str(message({**LLAMA, "num_hidden_layers": True})) == (
        "cfg.json: field 'num_hidden_layers': expected an integer, got a boolean (true)")
    assert str(message({**LLAMA, "vocab_size": 32000.5})) == (
        "cfg.json: field 'vocab_size': expected an integer, got the non-integer number 32000.5")
    assert str(message({**LLAMA, "tie_word_embeddings": "no"})) == (
        "cfg.json: field 'tie_word_embeddings': expected true or false, got a string ('no')")
    assert str(message({**LLAMA, "intermediate_size": [11008]})) == (
        "cfg.json: field 'intermediate_size': expected an integer, got an array")
    assert parse(**{**LLAMA, "hidden_size": 4096.0}).hidden_size == 4096  # an integral float is fine


def test_zero_and_negative_sizes():
    assert str(message({**LLAMA, "num_attention_heads": 0})) == (
        "cfg.json: field 'num_attention_heads': must be a positive integer, got 0")
    assert str(message({**LLAMA, "num_hidden_layers": -32})) == (
        "cfg.json: field 'num_hidden_layers': must be a positive integer, got -32")
    assert str(message({**LLAMA, "rope_theta": -1.0})) == "cfg.json: field 'rope_theta': must be positive, got -1.0"


def test_heads_must_divide_hidden_without_head_dim():
    assert str(message({**LLAMA, "num_attention_heads": 30, "num_key_value_heads": 30})) == (
        "cfg.json: field 'num_attention_heads': 30 attention heads do not divide hidden size 4096 "
        "and head_dim is not given")
    assert parse(**{**LLAMA, "num_attention_heads": 30, "num_key_value_heads": 30, "head_dim": 128}).head_dim == 128


def test_kv_heads_must_divide_heads():
    assert str(message({**LLAMA, "num_key_value_heads": 5})) == (
        "cfg.json: field 'num_key_value_heads': 5 key/value heads do not divide the 32 attention heads")


def test_top_k_cannot_exceed_experts():
    assert str(message({**MIXTRAL, "num_experts_per_tok": 9})) == (
        "cfg.json: field 'num_experts_per_tok': 9 experts per token exceeds the 8 experts available")


def test_errors_inside_text_config_name_the_nested_field():
    doc = json.loads((CONFIGS / "llama-4-scout.json").read_text())
    doc["text_config"] = {**doc["text_config"], "hidden_size": "big"}
    assert message(doc).field == "text_config.hidden_size"
    assert str(message({"model_type": "llava", "text_config": "x"})) == (
        "cfg.json: field 'text_config': expected an object, got a string ('x')")


def test_not_an_object():
    assert str(message([1, 2])) == "cfg.json: expected a JSON object, got an array"


def test_file_errors(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(InvalidInputError) as info:
        load_config_file(missing)
    assert str(info.value) == f"{missing}: file not found"

    broken = tmp_path / "broken.json"
    broken.write_text("{'model_type': 'llama'}")
    with pytest.raises(InvalidInputError) as info:
        load_config_file(broken)
    assert str(info.value).startswith(f"{broken}: not valid JSON (line 1, column 2: ")

    array = tmp_path / "array.json"
    array.write_text("[1, 2, 3]")
    with pytest.raises(InvalidInputError) as info:
        load_config_file(array)
    assert str(info.value) == f"{array}: expected a JSON object, got an array"

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InvalidInputError) as info:
        load_config_file(deep)
    assert str(info.value) == f"{deep}: not usable JSON: nested too deeply"

    with pytest.raises(InvalidInputError) as info:
        load_config_file(tmp_path)
    assert str(info.value).startswith(f"{tmp_path}: cannot read the file")


# ---------------------------------------------------------------------------------------------- shipped entries


@functools.cache
def _entries() -> dict[str, dict]:  # read once; tests must not modify the entries
    return {p.stem: tomllib.loads(p.read_text(encoding="utf-8")) for p in sorted(MODELS.glob("*.toml"))}


def test_every_shipped_config_parses_with_its_own_model_type():
    for model_id, entry in _entries().items():
        a = Architecture.from_hf_config(config_from_model_entry(entry), where=model_id)
        assert a.parsed_as != "generic", model_id
        assert entry["sources"], model_id
        if "published_params_b" in entry or "published_active_params_b" in entry:
            assert entry["published_params_source"], model_id


def test_config_null_keys_restore_json_nulls():
    entries = _entries()
    assert entries["mistral-7b-v0.3"]["config_null_keys"] == ["sliding_window"]
    assert config_from_model_entry(entries["mistral-7b-v0.3"])["sliding_window"] is None
    lite = Architecture.from_hf_config(config_from_model_entry(entries["deepseek-v2-lite"]))
    assert lite.mla.q_lora_rank == 0


def test_aliases_are_unique_ignoring_case():
    # the registry keys ids and aliases case-insensitively, so each key may occur only once
    keys = Counter()
    for model_id, entry in _entries().items():
        keys.update([model_id.lower()] + [alias.strip().lower() for alias in entry.get("aliases", [])])
    assert [key for key, n in keys.items() if n > 1] == []


# The distinct `model` values of the shipped calibration measurements (measurements.csv in the
# project's reference material) and the architecture each is; the README there says TRT-LLM
# v0.6.1's "LLaMA 7B/70B" are Llama-2 checkpoints.
CALIBRATION_NAMES = {
    "Baichuan2-7B": "baichuan2-7b", "Falcon 180B": "falcon-180b", "Falcon3-7B-Instruct": "falcon3-7b",
    "GPT-J 6B": "gpt-j-6b", "IBM-Granite-v3.1-8B-Instruct": "granite-3.1-8b-instruct",
    "LLaMA 3 70B": "llama-3-70b", "LLaMA 3 8B": "llama-3-8b", "LLaMA 70B": "llama-2-70b", "LLaMA 7B": "llama-2-7b",
    "LLaMA-2-13B": "llama-2-13b", "LLaMA-2-7B": "llama-2-7b", "LLaMA-3-8B": "llama-3-8b",
    "Llama 3.1 405B": "llama-3.1-405b", "Llama 3.1 8B": "llama-3.1-8b", "Llama 3.2 3B Instruct": "llama-3.2-3b",
    "Llama 3.3 70B": "llama-3.3-70b", "Llama 4 Maverick": "llama-4-maverick-17b-128e",
    "Llama 4 Scout": "llama-4-scout-17b-16e", "Llama-2 70B": "llama-2-70b", "Llama-3-8B": "llama-3-8b",
    "Llama-v2-7B-Chat": "llama-2-7b", "Llama-v3-8B-Instruct": "llama-3-8b", "Llama-v3.1-8B-Instruct": "llama-3.1-8b",
    "Llama-v3.2-1B-Instruct": "llama-3.2-1b", "Llama-v3.2-3B-Instruct": "llama-3.2-3b", "Llama3-70B": "llama-3-70b",
    "Mistral-7B-Instruct-v0.3": "mistral-7b-v0.3", "Phi-3.5-Mini-Instruct": "phi-3.5-mini-instruct",
    "Qwen2-7B-Instruct": "qwen2-7b", "Qwen2.5-1.5B-Instruct": "qwen2.5-1.5b", "Qwen2.5-7B-Instruct": "qwen2.5-7b",
    "Qwen3-235B-A22B": "qwen3-235b-a22b", "Qwen3-30B-A3B": "qwen3-30b-a3b", "TinyLlama 1.1B": "tinyllama-1.1b",
    "TinyLlama 1.1B (tinyllama-1.1b-1t-openorca)": "tinyllama-1.1b", "Vicuna-13B-v1.3": "vicuna-13b-v1.3",
    "Vicuna-33B-v1.3": "vicuna-33b-v1.3", "Vicuna-7B-v1.3": "vicuna-7b-v1.3",
}
NOT_SHIPPED = ["IndusQ-1.1B", "JAIS-6p7b-Chat", "PLaMo-1B", "Qwen3.5-2B"]


def test_calibration_model_names_resolve_through_aliases():
    lookup = {}
    for model_id, entry in _entries().items():
        for name in [model_id, *entry.get("aliases", [])]:
            lookup[name.strip().lower()] = model_id
    for name, model_id in CALIBRATION_NAMES.items():
        assert lookup.get(name.lower()) == model_id, name
    for name in NOT_SHIPPED:
        assert name.lower() not in lookup
