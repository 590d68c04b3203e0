"""Structured pruning: the workload becomes the smaller dense model's, rows and memory alike."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.kv_cache_quant import PLUGIN as KV_QUANT
from llmeff.techniques.builtin.kv_cache_quant import KvQuantParams
from llmeff.techniques.builtin.low_rank_factorization import PLUGIN as LOW_RANK
from llmeff.techniques.builtin.low_rank_factorization import LowRankParams
from llmeff.techniques.builtin.structured_pruning import PLUGIN, StructuredPruningParams
from llmeff.techniques.builtin.weight_activation_quant import PLUGIN as W8A8
from llmeff.techniques.builtin.weight_activation_quant import WeightActivationParams
from llmeff.techniques.checks import check_technique

# Sheared-LLaMA-2.7B (princeton-nlp/Sheared-LLaMA-2.7B config.json): Llama-2-7B pruned to hidden 2560,
# 20 heads of 128, MLP 6912, 32 layers, vocabulary 32000
SHEARED = StructuredPruningParams(hidden=0.625, heads=0.625, mlp=0.6279, shortcut_rotations=False)
SHEARED_PARAMETERS = 32 * (4 * 2560 * 2560 + 3 * 2560 * 6912 + 2 * 2560) + 2 * 32000 * 2560 + 2560


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_sheared_llama_2_7b_shapes(workload, device):
    base = workload("llama-2-7b", batch=2, prompt=512, output=64)
    sheared = PLUGIN.apply(base, device("a100-sxm4-80gb"), SHEARED)
    arch = sheared.architecture
    assert (arch.hidden_size, arch.num_attention_heads, arch.intermediate_size) == (2560, 20, 6912)
    assert round(SHEARED_PARAMETERS / 1e9, 1) == 2.7  # the model card's size
    assert sheared.memory.weight_bytes == pytest.approx(SHEARED_PARAMETERS * 2)
    assert _row(sheared, "decode", "q_proj").weight_bytes == pytest.approx(2560 * 2560 * 2)
    assert _row(sheared, "decode", "down_proj").flops_base == pytest.approx(2 * 2 * 6912 * 2560)
    assert _row(sheared, "decode", "lm_head").weight_bytes == pytest.approx(2560 * 32000 * 2)
    # 20 KV heads of 128 in fp16, K and V, 32 layers
    assert sheared.kv_bytes_per_token == 32 * 2 * 20 * 128 * 2
    assert sheared.memory.kv_cache_bytes == pytest.approx(2 * 576 * 32 * 2 * 20 * 128 * 2)
    assert _row(sheared, "decode", "qk_matmul").kv_bytes_per_context == pytest.approx(2 * 20 * 128 * 2)


def test_gqa_keeps_whole_kv_groups(workload, device):
    base = workload("llama-2-70b")
    half = PLUGIN.apply(base, device("h100-sxm-80gb"), StructuredPruningParams(heads=0.5))
    assert (half.architecture.num_attention_heads, half.architecture.num_key_value_heads) == (32, 4)
    assert half.kv_bytes_per_token == 80 * 2 * 4 * 128 * 2
    assert _row(half, "decode", "o_proj").weight_bytes == pytest.approx(32 * 128 * 8192 * 2)


def test_layer_removal_and_slicegpt_rotations(workload, device):
    base = workload("llama-2-7b", batch=1, prompt=128, output=8)
    shallow = PLUGIN.apply(base, device("a100-sxm4-80gb"), StructuredPruningParams(layers=0.75))
    assert _row(shallow, "decode", "q_proj").layers == 24 and shallow.architecture.num_layers == 24
    assert shallow.kv_bytes_per_token == base.kv_bytes_per_token * 24 / 32
    sliced = PLUGIN.apply(base, device("a100-sxm4-80gb"), StructuredPruningParams(hidden=0.75))
    d = 3072
    rotation = _row(sliced, "decode", "shortcut_rotation")
    assert (rotation.layers, rotation.flops_base, rotation.weight_bytes) == (32, 2 * 2 * d * d, 2 * d * d * 2)
    assert _row(sliced, "decode", "q_proj").weight_bytes == pytest.approx(d * 4096 * 2)
    parameters = 32 * (4 * d * 4096 + 3 * d * 11008 + 2 * d) + 2 * 32000 * d + d
    assert sliced.memory.weight_bytes == pytest.approx((parameters + 32 * 2 * d * d) * 2)


def test_commutes_with_uniform_rewrites(workload, device):
    base = workload("llama-2-7b", batch=2, prompt=256, output=32)
    a100, prune = device("a100-sxm4-80gb"), StructuredPruningParams(mlp=0.5, heads=0.75)
    quant = WeightActivationParams(group_size=128)
    first = W8A8.apply(PLUGIN.apply(base, a100, prune), a100, quant)
    last = PLUGIN.apply(W8A8.apply(base, a100, quant), a100, prune)
    assert last.memory.weight_bytes == pytest.approx(first.memory.weight_bytes)
    assert last.decode.table.weight_bytes == pytest.approx(first.decode.table.weight_bytes)
    kv = KvQuantParams()
    first = KV_QUANT.apply(PLUGIN.apply(base, a100, prune), a100, kv)
    last = PLUGIN.apply(KV_QUANT.apply(base, a100, kv), a100, prune)
    assert last.memory.kv_cache_bytes == pytest.approx(first.memory.kv_cache_bytes)
    assert last.decode.table.kv_bytes_base == pytest.approx(first.decode.table.kv_bytes_base)


def test_invalid_settings_and_refusals(workload, device, kb):
    from llmeff.workload.build import build_workload
    from llmeff.workload.request import WorkloadRequest

    with pytest.raises(InvalidInputError, match="field 'mlp': nothing is pruned"):
        StructuredPruningParams()
    with pytest.raises(InvalidInputError, match=r"field 'heads': must be a kept fraction in \(0, 1\], got 0"):
        StructuredPruningParams(heads=0.0)
    factored = LOW_RANK.apply(workload(), device("a100-sxm4-80gb"), LowRankParams())
    verdict = PLUGIN.applicability(factored, device("a100-sxm4-80gb"), StructuredPruningParams(mlp=0.5))
    assert not verdict.ok and "before low-rank-factorization" in verdict.reason
    mamba = build_workload(kb.model("mamba-2.8b").architecture(), WorkloadRequest())
    assert not PLUGIN.applicability(mamba, device("a100-sxm4-80gb"), StructuredPruningParams(mlp=0.5)).ok


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b", "gemma-2-9b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device("h100-sxm-80gb")) == []
