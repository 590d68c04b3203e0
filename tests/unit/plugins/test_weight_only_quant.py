"""Weight-only quantization: bytes from the bit width and the group overhead, compute unchanged."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import decode_at, estimate
from llmeff.techniques.builtin.weight_only_quant import PLUGIN, WeightOnlyParams

# Llama-2-7B (config.json shapes): GEMM weights of the 32 layers and the untied LM head
LAYER_GEMM = 4 * 4096 * 4096 + 3 * 4096 * 11008
LM_HEAD = 32000 * 4096


def test_4bit_g128_decode_reads_a_quarter_of_the_weights_plus_scales(workload, device):
    base = workload("llama-2-7b", prompt=16, output=2)
    w4 = PLUGIN.apply(base, device("a100-sxm4-80gb"), WeightOnlyParams(bits=4, group_size=128))
    bits = 4 + (16 + 4) / 128  # 4-bit weights, an fp16 scale and a 4-bit zero point per 128 weights
    gemm_bytes = lambda w: sum(  # noqa: E731
        b * n for b, n, k, name in zip(w.decode.table.weight_bytes, w.decode.table.layers, w.decode.table.kinds,
                                       w.decode.table.names) if k == "gemm" and name != "lm_head")
    assert gemm_bytes(base) == 32 * LAYER_GEMM * 2
    assert gemm_bytes(w4) == pytest.approx(32 * LAYER_GEMM * bits / 8)
    # batch-1 decode is bound by weight traffic: about a quarter of fp16's, plus the fp16 LM head
    a100 = device("a100-sxm4-80gb")
    t16, t4 = decode_at(base, a100, 17).roofline_time_s, decode_at(w4, a100, 17).roofline_time_s
    expected = (32 * LAYER_GEMM * bits / 8 + LM_HEAD * 2) / (32 * LAYER_GEMM * 2 + LM_HEAD * 2)
    assert t4 / t16 == pytest.approx(expected, rel=0.02)
    assert w4.memory.weight_bytes == pytest.approx(base.memory.weight_bytes - 32 * LAYER_GEMM * 2 * (1 - bits / 16),
                                                   rel=1e-6)


def test_compute_precision_and_prefill_flops_stay(workload, device):
    base = workload("llama-2-7b")
    w4 = PLUGIN.apply(base, device("h100-sxm-80gb"), WeightOnlyParams())
    assert set(w4.prefill.table.dtypes) == {"fp16"}
    assert (w4.prefill.table.flops_base == base.prefill.table.flops_base).all()
    assert estimate(w4, device("h100-sxm-80gb")).roof.peak_flops == estimate(base, device("h100-sxm-80gb")).roof.peak_flops


def test_invalid_bits_name_the_parameter():
    with pytest.raises(InvalidInputError, match="field 'bits': must be 2, 3, 4 or 8, got 5"):
        WeightOnlyParams(bits=5)
    with pytest.raises(InvalidInputError, match="field 'group_size'"):
        WeightOnlyParams.parse({"group_size": "4"})


def test_refuses_weights_that_are_not_16_bit(workload, device):
    int8 = workload("llama-2-7b", weight_dtype="int8")
    verdict = PLUGIN.applicability(int8, device("a100-sxm4-80gb"), WeightOnlyParams())
    assert not verdict.ok and "already int8" in verdict.reason
    with pytest.raises(TechniqueNotApplicableError, match="weight-only-quant cannot apply"):
        PLUGIN.apply(int8, device("a100-sxm4-80gb"), WeightOnlyParams())
