"""Contextual sparsity: decode reads the batch's union of active neurons and heads, plus the predictors."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.contextual_sparsity import PLUGIN, ContextualSparsityParams
from llmeff.techniques.checks import check_technique

H, W, L = 4096, 11008, 32  # Llama-2-7B config.json


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_one_sequence_reads_only_its_active_neurons(workload, device):
    base = workload("llama-2-7b", batch=1, prompt=256, output=16)
    sparse = PLUGIN.apply(base, device("a100-sxm4-80gb"), ContextualSparsityParams(mlp_active=0.25))
    for name in ("gate_proj", "up_proj", "down_proj"):
        assert _row(sparse, "decode", name).weight_bytes == pytest.approx(H * W * 2 * 0.25)
        assert _row(sparse, "decode", name).flops_base == pytest.approx(2 * H * W * 0.25)
    # up_proj reads the 4096-wide input and writes a quarter of the 11008-wide output
    assert _row(sparse, "decode", "up_proj").activation_bytes_base == pytest.approx((H + W * 0.25) * 2)
    assert (sparse.prefill.table.weight_bytes == base.prefill.table.weight_bytes).all()
    assert _row(sparse, "decode", "q_proj").weight_bytes == _row(base, "decode", "q_proj").weight_bytes


def test_the_batch_union_grows_like_the_moe_expected_distinct_count(workload, device):
    base = workload("llama-2-7b", batch=8, prompt=256, output=16)
    sparse = PLUGIN.apply(base, device("a100-sxm4-80gb"), ContextualSparsityParams(mlp_active=0.25))
    union = 1 - 0.75 ** 8  # 8 independent tokens, each using a quarter of the neurons
    assert _row(sparse, "decode", "down_proj").weight_bytes == pytest.approx(H * W * 2 * union)


def test_deja_vu_predictor_cost(workload, device):
    base = workload("llama-2-7b", batch=2, prompt=256, output=16)
    sparse = PLUGIN.apply(base, device("a100-sxm4-80gb"), ContextualSparsityParams(mlp_active=0.2))
    predictor = _row(sparse, "decode", "mlp_predictor")  # Linear(4096, 1000) then Linear(1000, 11008)
    assert (predictor.layers, predictor.weight_bytes) == (L, 1000 * (H + W) * 2)
    assert predictor.flops_base == 2 * 2 * 1000 * (H + W)
    assert sparse.memory.weight_bytes == base.memory.weight_bytes + L * 1000 * (H + W) * 2
    assert "mlp_predictor" not in sparse.prefill.table.names


def test_head_sparsity_under_gqa(workload, device):
    base = workload("llama-2-70b", batch=4, prompt=512, output=16)  # 64 query heads over 8 KV heads
    sparse = PLUGIN.apply(base, device("h100-sxm-80gb"),
                          ContextualSparsityParams(mlp_active=1.0, heads_active=0.5, predictor_rank=0))
    assert _row(sparse, "decode", "q_proj").weight_bytes == pytest.approx(
        _row(base, "decode", "q_proj").weight_bytes * (1 - 0.5 ** 4))
    qk, qk0 = _row(sparse, "decode", "qk_matmul"), _row(base, "decode", "qk_matmul")
    assert qk.flops_per_context == qk0.flops_per_context / 2
    # a KV head is read when any of its 8 query heads is active
    assert _row(sparse, "decode", "sv_matmul").kv_bytes_per_context == pytest.approx(
        _row(base, "decode", "sv_matmul").kv_bytes_per_context * (1 - 0.5 ** 8))
    assert _row(sparse, "decode", "k_proj").weight_bytes == _row(base, "decode", "k_proj").weight_bytes
    assert sparse.memory.weight_bytes == base.memory.weight_bytes  # no predictor


def test_required_fraction_and_refusals(workload, device):
    with pytest.raises(InvalidInputError, match="field 'mlp_active': required"):
        ContextualSparsityParams()
    with pytest.raises(InvalidInputError, match="field 'heads_active'"):
        ContextualSparsityParams.parse({"mlp_active": "0.3", "heads_active": "0"})
    verdict = PLUGIN.applicability(workload("mixtral-8x7b"), device("h100-sxm-80gb"),
                                   ContextualSparsityParams(mlp_active=0.3))
    assert not verdict.ok and "no dense MLP" in verdict.reason
    verdict = PLUGIN.applicability(workload("deepseek-v2-lite"), device("h100-sxm-80gb"),
                                   ContextualSparsityParams(mlp_active=0.3, heads_active=0.5))
    assert not verdict.ok and "MLA" in verdict.reason


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "gemma-2-9b", "mixtral-8x7b"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=4, prompt=256, output=16), device("h100-sxm-80gb")) == []
