"""Parameter counts: hand-computed anchors, fixture configs, and every shipped data/models entry.

Expected values are written out as arithmetic from the config shapes (weights, biases, norm
vectors, one line per block part), or copied from the reference fact sheet, never from
llmeff's own output.
"""

from __future__ import annotations

import functools
import json
import tomllib
from pathlib import Path

import pytest

from llmeff.architectures import Architecture, config_from_model_entry, count_parameters, load_config_file

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "tests" / "data" / "configs"
MODELS = ROOT / "data" / "models"


def count_of(config: dict) -> tuple[int, int]:
    count = count_parameters(Architecture.from_hf_config(config))
    return count.total, count.active


# ---------------------------------------------------------------------------------------------- anchors

LLAMA_2_7B = {
    "model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, "intermediate_size": 11008,
    "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "tie_word_embeddings": False,
}


def test_llama_2_7b_by_hand():
    # per layer: q, k, v, o (4 * h^2), gate/up/down (3 * h * I), two RMSNorm vectors;
    # untied embedding and LM head; final norm
    expected = 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 32000 * 4096 + 4096
    assert expected == 6_738_415_616
    count = count_parameters(Architecture.from_hf_config(LLAMA_2_7B))
    assert (count.total, count.active) == (expected, expected)
    assert count.embedding == count.lm_head == 32000 * 4096
    assert count.per_layer_attention == (4 * 4096**2,) * 32
    assert count.per_layer_mlp == (3 * 4096 * 11008,) * 32


def test_gpt2_124m_by_hand():
    h = 768
    layer = (2 * h  # ln_1 (weight + bias)
             + h * 3 * h + 3 * h  # c_attn with bias
             + h * h + h  # attention c_proj with bias
             + 2 * h  # ln_2
             + h * 4 * h + 4 * h  # c_fc (n_inner absent -> 4h)
             + 4 * h * h + h)  # mlp c_proj
    expected = 12 * layer + 50257 * h + 1024 * h + 2 * h  # wte (tied head), wpe, ln_f
    assert expected == 124_439_808  # the well-known 124M of GPT-2 small
    total, active = count_of(json.loads((CONFIGS / "gpt2.json").read_text()))
    assert total == active == expected


MIXTRAL_ATTENTION = 2 * 4096**2 + 2 * 4096 * 1024  # q and o are h x h; k and v h x (8 kv heads * 128)
MIXTRAL_EXPERT = 3 * 4096 * 14336
MIXTRAL_FIXED = 2 * 32000 * 4096 + 4096  # untied embedding and head, final norm


def test_mixtral_counts_two_of_eight_experts_as_active():
    router, norms = 4096 * 8, 2 * 4096
    total = 32 * (MIXTRAL_ATTENTION + 8 * MIXTRAL_EXPERT + router + norms) + MIXTRAL_FIXED
    active = 32 * (MIXTRAL_ATTENTION + 2 * MIXTRAL_EXPERT + router + norms) + MIXTRAL_FIXED
    assert count_of(json.loads((CONFIGS / "mixtral-8x7b.json").read_text())) == (total, active)
    # the fact sheet (models.yaml): 46.703B total, 12.880B active
    assert round(total / 1e9, 3) == 46.703 and round(active / 1e9, 3) == 12.880


def _deepseek_v3_by_hand() -> tuple[int, int]:
    h, heads = 7168, 128
    attention = (h * 1536 + 1536 + 1536 * heads * (128 + 64)  # q_a_proj, q_a_layernorm, q_b_proj
                 + h * (512 + 64) + 512  # kv_a_proj_with_mqa, kv_a_layernorm
                 + 512 * heads * (128 + 128)  # kv_b_proj -> k_nope and v
                 + heads * 128 * h)  # o_proj
    expert, norms = 3 * h * 2048, 2 * h
    router = h * 256 + 256  # gate weight and the per-expert score-correction bias
    dense_layers = 3 * (attention + 3 * h * 18432 + norms)
    total = dense_layers + 58 * (attention + (256 + 1) * expert + router + norms) + 2 * 129280 * h + h
    active = dense_layers + 58 * (attention + (8 + 1) * expert + router + norms) + 2 * 129280 * h + h
    return total, active


def test_deepseek_v3_is_671b_with_37b_active():
    total, active = _deepseek_v3_by_hand()
    assert count_of(json.loads((CONFIGS / "deepseek-v3.json").read_text())) == (total, active)
    # DeepSeek-V3 README: 671B total, 37B activated (MTP module excluded)
    assert abs(total / 671e9 - 1) < 0.005
    assert abs(active / 37e9 - 1) < 0.02


# ---------------------------------------------------------------------------------------------- fixtures


def _moe_layer(attention: int, expert: int, routed: int, used: int, shared: int, router: int, norms: int):
    """(total, active) of one MoE layer: all routed experts stored, `used` of them touched per token."""
    rest = attention + shared * expert + router + norms
    return rest + routed * expert, rest + used * expert


_QWEN3 = _moe_layer(2048 * 4096 * 2 + 2 * 2048 * 512 + 2 * 128, 3 * 2048 * 768, 128, 8, 0, 2048 * 128, 2 * 2048)
_SCOUT = _moe_layer(2 * 5120**2 + 2 * 5120 * 1024, 3 * 5120 * 8192, 16, 1, 1, 5120 * 16, 2 * 5120)
_V2_LITE_ATTENTION = 2048 * 16 * 192 + 2048 * (512 + 64) + 512 + 512 * 16 * 256 + 16 * 128 * 2048
_V2_LITE = _moe_layer(_V2_LITE_ATTENTION, 3 * 2048 * 1408, 64, 6, 2, 2048 * 64, 2 * 2048)
_V2_LITE_FIXED = _V2_LITE_ATTENTION + 3 * 2048 * 10944 + 2 * 2048 + 2 * 102400 * 2048 + 2048  # layer 0 dense

MAMBA_LAYER = (2560 * 2 * 5120  # in_proj (x and gate)
               + 5120 * 4 + 5120  # depthwise conv1d weight + bias
               + 5120 * (160 + 2 * 16)  # x_proj -> dt, B, C
               + 160 * 5120 + 5120  # dt_proj with bias
               + 5120 * 16 + 5120  # A_log and D
               + 5120 * 2560  # out_proj
               + 2560)  # RMSNorm

# (total, active) per fixture, from the shapes in the fixture (values of the fact sheet)
FIXTURE_COUNTS = {
    "llama-2-7b.json": (6_738_415_616,) * 2,
    "mistral-7b-v0.1.json": (32 * (MIXTRAL_ATTENTION + MIXTRAL_EXPERT + 2 * 4096) + MIXTRAL_FIXED,) * 2,
    "mistral-7b-v0.3.json": (32 * (MIXTRAL_ATTENTION + MIXTRAL_EXPERT + 2 * 4096) + 2 * 32768 * 4096 + 4096,) * 2,
    # Qwen2: q/k/v biases; 28 heads and 4 KV heads of 128
    "qwen2-7b.json": (28 * (2 * 3584**2 + 2 * 3584 * 512 + (3584 + 2 * 512) + 3 * 3584 * 18944 + 2 * 3584)
                      + 2 * 152064 * 3584 + 3584,) * 2,
    "qwen1.5-0.5b.json": (24 * (4 * 1024**2 + 3 * 1024 + 3 * 1024 * 2816 + 2 * 1024) + 151936 * 1024 + 1024,) * 2,
    "qwen3-30b-a3b.json": (48 * _QWEN3[0] + 2 * 151936 * 2048 + 2048, 48 * _QWEN3[1] + 2 * 151936 * 2048 + 2048),
    # Gemma-7B: 16 heads * 256 = 4096 > hidden 3072; tied
    "gemma-7b.json": (28 * (4 * 3072 * 4096 + 3 * 3072 * 24576 + 2 * 3072) + 256000 * 3072 + 3072,) * 2,
    # Gemma-2: four RMSNorms per layer
    "gemma-2-9b.json": (42 * (2 * 3584 * 4096 + 2 * 3584 * 2048 + 3 * 3584 * 14336 + 4 * 3584)
                        + 256000 * 3584 + 3584,) * 2,
    # Phi-2: biases everywhere, one shared LayerNorm per block, LM head with bias
    "phi-2.json": (32 * (4 * (2560**2 + 2560) + 2 * 2560 * 10240 + 10240 + 2560 + 2 * 2560)
                   + 2 * 51200 * 2560 + 51200 + 2 * 2560,) * 2,
    "phi-3-mini-4k.json": (32 * (4 * 3072**2 + 3 * 3072 * 8192 + 2 * 3072) + 2 * 32064 * 3072 + 3072,) * 2,
    # OPT: biased q/k/v/o and fc1/fc2, two LayerNorms, learned positions of 2048 + 2 rows, tied
    "opt-6.7b.json": (32 * (4 * (4096**2 + 4096) + 2 * 4096 * 16384 + 16384 + 4096 + 4 * 4096)
                      + 50272 * 4096 + 2050 * 4096 + 2 * 4096,) * 2,
    # Falcon-7B: multi-query fused qkv (71 + 2) * 64, one LayerNorm, 4h GELU MLP, no biases, tied
    "falcon-7b.json": (32 * (4544 * (4544 + 2 * 64) + 4544**2 + 2 * 4544 * 18176 + 2 * 4544)
                       + 65024 * 4544 + 2 * 4544,) * 2,
    # Falcon-40B (RefinedWeb names): 8 KV groups, two LayerNorms per parallel block
    "falcon-40b-refinedweb.json": (60 * (8192 * (8192 + 2 * 8 * 64) + 8192**2 + 2 * 8192 * 32768 + 4 * 8192)
                                   + 65024 * 8192 + 2 * 8192,) * 2,
    "gpt2.json": (124_439_808,) * 2,
    # GPT-J: no attention biases, biased MLP, one LayerNorm, untied head with bias
    "gpt-j-6b.json": (28 * (4 * 4096**2 + 2 * 4096 * 16384 + 16384 + 4096 + 2 * 4096)
                      + 2 * 50400 * 4096 + 50400 + 2 * 4096,) * 2,
    # BLOOM: 12 h^2 + 13 h per layer (fused biased qkv, dense, 4h MLP, two LayerNorms), embedding LayerNorm
    "bloom-176b.json": (70 * (12 * 14336**2 + 13 * 14336) + 250880 * 14336 + 2 * 14336 + 2 * 14336,) * 2,
    "deepseek-v2-lite.json": (_V2_LITE_FIXED + 26 * _V2_LITE[0], _V2_LITE_FIXED + 26 * _V2_LITE[1]),
    "deepseek-v3.json": _deepseek_v3_by_hand(),
    # vocab 50277 padded to a multiple of 8 = 50280; tied
    "mamba-2.8b-ssm.json": (64 * MAMBA_LAYER + 50280 * 2560 + 2560,) * 2,
    "llama-4-scout.json": (48 * _SCOUT[0] + 2 * 202048 * 5120 + 5120, 48 * _SCOUT[1] + 2 * 202048 * 5120 + 5120),
    "granite-3.1-8b.json": (40 * (2 * 4096**2 + 2 * 4096 * 1024 + 3 * 4096 * 12800 + 2 * 4096)
                            + 49155 * 4096 + 4096,) * 2,
    "baichuan2-7b.json": (32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 125696 * 4096 + 4096,) * 2,
    "mixtral-8x7b.json": (32 * (MIXTRAL_ATTENTION + 8 * MIXTRAL_EXPERT + 4096 * 8 + 2 * 4096) + MIXTRAL_FIXED,
                          32 * (MIXTRAL_ATTENTION + 2 * MIXTRAL_EXPERT + 4096 * 8 + 2 * 4096) + MIXTRAL_FIXED),
}


def test_every_fixture_has_an_expected_count():
    assert sorted(FIXTURE_COUNTS) == sorted(p.name for p in CONFIGS.glob("*.json"))


@pytest.mark.parametrize("name", sorted(FIXTURE_COUNTS))
def test_fixture_config_counts(name):
    count = count_parameters(load_config_file(CONFIGS / name))
    assert (count.total, count.active) == FIXTURE_COUNTS[name]
    assert sum(layer.total for layer in count.per_layer) + count.embedding + count.position_embedding \
        + count.lm_head + count.final_norm + count.other == count.total


def test_to_dict_is_json_and_has_the_breakdown():
    count = count_parameters(load_config_file(CONFIGS / "deepseek-v2-lite.json"))
    data = json.loads(json.dumps(count.to_dict()))
    assert data["total"] == count.total and data["active"] == count.active
    assert len(data["per_layer"]) == 27
    assert data["per_layer"][0]["routed_experts"] == 0  # layer 0 is dense (first_k_dense_replace 1)
    assert data["per_layer"][1]["routed_experts"] == 64 * 3 * 2048 * 1408


# ---------------------------------------------------------------------------------------------- shipped data

# Copied from /work/shared/reference/models.yaml (params_b, active_params_b), whose counting
# conventions are in models-notes.md section 2 (both batches). Kept here because the test must
# not read ../shared at run time.
SHEET = {
    "llama-2-7b": (6.738, None), "llama-2-13b": (13.016, None), "llama-2-70b": (68.977, None),
    "llama-3-8b": (8.030, None), "llama-3-70b": (70.554, None), "llama-3.1-405b": (405.853, None),
    "llama-3.2-1b": (1.236, None), "llama-3.2-3b": (3.213, None), "tinyllama-1.1b": (1.100, None),
    "mistral-7b-v0.1": (7.242, None), "mixtral-8x7b": (46.703, 12.880), "mixtral-8x22b": (140.630, 39.162),
    "qwen1.5-0.5b": (0.464, None), "qwen1.5-1.8b": (1.526, None), "qwen1.5-7b": (7.721, None),
    "qwen2-7b": (7.616, None), "qwen2.5-7b": (7.616, None), "qwen2.5-72b": (72.706, None),
    "gemma-2b": (2.506, None), "gemma-7b": (8.538, None), "gemma-2-9b": (9.242, None), "phi-2": (2.780, None),
    "phi-3-mini-4k": (3.821, None), "opt-1.3b": (1.316, None), "opt-6.7b": (6.658, None),
    "opt-13b": (12.853, None), "opt-30b": (29.975, None), "opt-66b": (65.720, None), "opt-175b": (174.605, None),
    "falcon-7b": (6.922, None), "falcon-40b": (41.303, None), "gpt2-124m": (0.1244, None),
    "gpt3-175b": (174.604, None), "bloom-176b": (176.247, None), "deepseek-v2-lite": (15.707, 2.661),
    "deepseek-v3": (671.026, 37.552), "mamba-2.8b": (2.768, None), "llama-3.1-8b": (8.030, None),
    "llama-3.1-70b": (70.554, None), "llama-3.3-70b": (70.554, None),
    "llama-4-scout-17b-16e": (107.770, 17.173), "llama-4-maverick-17b-128e": (400.712, 17.185),
    "qwen3-30b-a3b": (30.532, 3.353), "qwen3-235b-a22b": (235.094, 22.191), "vicuna-7b-v1.3": (6.738, None),
    "vicuna-13b-v1.3": (13.016, None), "vicuna-33b-v1.3": (32.529, None), "gpt-j-6b": (6.051, None),
    "falcon-180b": (178.557, None), "phi-3.5-mini-instruct": (3.821, None),
    "granite-3.1-8b-instruct": (8.171, None), "qwen2.5-1.5b": (1.544, None), "mistral-7b-v0.3": (7.248, None),
    "falcon3-7b": (7.456, None), "baichuan2-7b": (7.506, None),
}


@functools.cache
def _entries() -> dict[str, dict]:  # read once; tests must not modify the entries
    return {p.stem: tomllib.loads(p.read_text(encoding="utf-8")) for p in sorted(MODELS.glob("*.toml"))}


def _count(entry: dict):
    return count_parameters(Architecture.from_hf_config(config_from_model_entry(entry), where=entry["id"]))


def test_one_file_per_fact_sheet_model():
    assert sorted(_entries()) == sorted(SHEET)
    assert len(SHEET) == 55


@pytest.mark.parametrize("model_id", sorted(SHEET))
def test_shipped_count_matches_the_fact_sheet(model_id):
    entry = _entries()[model_id]
    assert entry["id"] == model_id
    count = _count(entry)
    total_b, active_b = SHEET[model_id]
    assert count.total / 1e9 == pytest.approx(total_b, rel=0.005)
    if active_b is None:
        assert count.active == count.total
    else:
        assert count.active / 1e9 == pytest.approx(active_b, rel=0.005)


def test_shipped_count_is_within_two_percent_of_published_sizes():
    checked = 0
    for model_id, entry in _entries().items():
        count = _count(entry)
        for key, value in (("published_params_b", count.total), ("published_active_params_b", count.active)):
            if key in entry:
                assert entry["published_params_source"], model_id
                assert value / 1e9 == pytest.approx(entry[key], rel=0.02), (model_id, key)
                checked += 1
    assert checked >= 10  # DeepSeek-V3, Llama-3.1/3.3, Llama-4, Granite, GPT-3, BLOOM
