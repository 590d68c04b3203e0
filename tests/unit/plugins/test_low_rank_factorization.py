"""Low-rank factorization: r (k + m) weights and FLOPs per factored k x m projection, refused when it saves nothing."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.low_rank_factorization import PLUGIN, LowRankParams
from llmeff.techniques.builtin.weight_only_quant import PLUGIN as WEIGHT_ONLY
from llmeff.techniques.builtin.weight_only_quant import WeightOnlyParams
from llmeff.techniques.checks import check_technique

H, W, L = 4096, 11008, 32  # Llama-2-7B config.json


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_svd_llm_rank_from_the_kept_parameter_ratio(workload, device):
    base = workload("llama-2-7b", batch=4, prompt=128, output=8)
    svd = PLUGIN.apply(base, device("a100-sxm4-80gb"), LowRankParams(param_ratio=0.8))
    r_square = int(0.8 * H * H / (2 * H))  # 1638, as SVD-LLM's code rounds
    r_mlp = int(0.8 * H * W / (H + W))  # 2388
    q = _row(svd, "decode", "q_proj")
    assert q.weight_bytes == pytest.approx(r_square * 2 * H * 2)
    assert q.flops_base == pytest.approx(2 * 4 * r_square * 2 * H)
    # 4 tokens: the 4096-wide input and output plus the rank-r intermediate written and read
    assert q.activation_bytes_base == pytest.approx(4 * (H + H + 2 * r_square) * 2)
    # k_proj writes K to the cache unchanged; its activation column holds the input and the intermediate
    k = _row(svd, "decode", "k_proj")
    assert k.kv_bytes_base == _row(base, "decode", "k_proj").kv_bytes_base
    assert k.activation_bytes_base == pytest.approx(4 * (H + 2 * r_square) * 2)
    assert _row(svd, "decode", "down_proj").weight_bytes == pytest.approx(r_mlp * (H + W) * 2)
    saved = L * (4 * (H * H - r_square * 2 * H) + 3 * (H * W - r_mlp * (H + W))) * 2
    assert svd.memory.weight_bytes == pytest.approx(base.memory.weight_bytes - saved)
    assert _row(svd, "decode", "lm_head").weight_bytes == _row(base, "decode", "lm_head").weight_bytes


def test_selected_projections_and_fixed_rank(workload, device):
    base = workload("llama-2-7b")
    only = PLUGIN.apply(base, device("a100-sxm4-80gb"), LowRankParams(rank=512, projections="q_proj+v_proj"))
    assert _row(only, "decode", "v_proj").weight_bytes == pytest.approx(512 * 2 * H * 2)
    assert _row(only, "decode", "k_proj").weight_bytes == _row(base, "decode", "k_proj").weight_bytes
    mlp = PLUGIN.apply(base, device("a100-sxm4-80gb"), LowRankParams(rank_ratio=0.25, projections="mlp"))
    assert _row(mlp, "decode", "gate_proj").weight_bytes == pytest.approx(1024 * (H + W) * 2)  # r = H / 4
    assert _row(mlp, "decode", "o_proj").weight_bytes == _row(base, "decode", "o_proj").weight_bytes


def test_losparse_adds_a_sparse_residual(workload, device):
    base = workload("llama-2-7b", batch=1)
    lo = PLUGIN.apply(base, device("a100-sxm4-80gb"), LowRankParams(rank=256, sparse_density=0.1))
    # 10% of the 4096 x 4096 weights in CSR: a 16-bit value and a 16-bit index each, a 32-bit offset per row
    csr = 0.1 * H * H * 4 + H * 4
    assert _row(lo, "decode", "o_proj").weight_bytes == pytest.approx(256 * 2 * H * 2 + csr)
    assert _row(lo, "decode", "o_proj").flops_base == pytest.approx(2 * (256 * 2 * H + 0.1 * H * H))


def test_refuses_a_rank_that_saves_nothing(workload, device):
    # a square matrix at half rank stores r (k + m) = k m: nothing gained
    verdict = PLUGIN.applicability(workload(), device("a100-sxm4-80gb"), LowRankParams(rank_ratio=0.5))
    assert not verdict.ok and "q_proj (4096x4096)" in verdict.reason and "no saving" in verdict.reason
    applied = PLUGIN.apply(workload(), device("a100-sxm4-80gb"), LowRankParams())
    assert "already factorized" in PLUGIN.applicability(applied, device("a100-sxm4-80gb"), LowRankParams()).reason
    # weight-only-quant sizes weights from the unfactored parameter count: it must come first
    assert applied.weight_dtype == "fp16 low-rank"
    assert not WEIGHT_ONLY.applicability(applied, device("a100-sxm4-80gb"), WeightOnlyParams()).ok


def test_invalid_settings_name_the_parameter():
    with pytest.raises(InvalidInputError, match=r"field 'param_ratio': must be a kept fraction of parameters"):
        LowRankParams(param_ratio=1.0)
    with pytest.raises(InvalidInputError, match="field 'projections': unknown projection 'qproj'"):
        LowRankParams.parse({"projections": "qproj"})
    with pytest.raises(InvalidInputError, match="field 'rank': give rank or rank_ratio, not both"):
        LowRankParams(rank=64, rank_ratio=0.1)


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device("h100-sxm-80gb")) == []
