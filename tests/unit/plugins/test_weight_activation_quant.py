"""Weight-activation quantization: GEMMs at the low-precision peak, fewer weight and input bytes."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import estimate
from llmeff.techniques.builtin.weight_activation_quant import PLUGIN, WeightActivationParams
from llmeff.techniques.checks import check_technique

H, W, L = 4096, 11008, 32  # Llama-2-7B config.json: hidden, MLP width, layers
SHAPES = {"q_proj": (H, H), "k_proj": (H, H), "v_proj": (H, H), "o_proj": (H, H),
          "gate_proj": (H, W), "up_proj": (H, W), "down_proj": (W, H)}


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_w8a8_int8_weights_with_a_channel_scale_and_int8_gemms(workload, device):
    base = workload("llama-2-7b", batch=2, prompt=64, output=8)
    w8 = PLUGIN.apply(base, device("a100-sxm4-80gb"), WeightActivationParams())
    for name, (k, m) in SHAPES.items():
        row = _row(w8, "decode", name)
        assert row.dtype == "int8"
        assert row.weight_bytes == pytest.approx(k * m + 2 * m)  # 1 byte per weight, an fp16 scale per output channel
    # the q_proj input: 2 tokens x 4096 int8 values plus one fp16 scale per token; the output stays fp16
    assert _row(w8, "decode", "q_proj").activation_bytes_base == pytest.approx(2 * (H + 2) + 2 * H * 2)
    # k_proj writes the KV cache in fp16: its activation column is only the (quantized) input
    assert _row(w8, "decode", "k_proj").activation_bytes_base == pytest.approx(2 * (H + 2))
    assert _row(w8, "decode", "k_proj").kv_bytes_base == _row(base, "decode", "k_proj").kv_bytes_base
    for name in ("qk_matmul", "softmax", "sv_matmul", "norms", "lm_head"):
        assert _row(w8, "decode", name).dtype == "fp16"
    stored = L * sum(k * m for k, m in SHAPES.values())
    expected = base.memory.weight_bytes - 2 * stored + L * sum(k * m + 2 * m for k, m in SHAPES.values())
    assert w8.memory.weight_bytes == pytest.approx(expected, rel=1e-9)
    assert w8.weight_dtype == "int8" and w8.activation_dtype == "fp16"


def test_compute_bound_prefill_gemms_take_the_int8_peak(workload, device):
    a100 = device("a100-sxm4-80gb")  # 312 TFLOP/s fp16, 624 TOP/s int8 (dense)
    base = workload("llama-2-7b", batch=1, prompt=2048, output=2)
    w8 = PLUGIN.apply(base, a100, WeightActivationParams())
    before = {op.name: op for op in estimate(base, a100).prefill.operators}
    after = {op.name: op for op in estimate(w8, a100).prefill.operators}
    for name in ("q_proj", "gate_proj", "down_proj"):
        assert after[name].flops == before[name].flops
        assert after[name].roofline_time_s == pytest.approx(before[name].roofline_time_s * 312 / 624)
    assert after["qk_matmul"].roofline_time_s == before["qk_matmul"].roofline_time_s


def test_fp8_runs_on_hopper_and_is_refused_on_ampere(workload, device):
    base = workload("llama-2-7b")
    fp8 = WeightActivationParams(number_format="fp")
    verdict = PLUGIN.applicability(base, device("a100-sxm4-80gb"), fp8)
    assert not verdict.ok and "no published fp8 peak" in verdict.reason and "W8A8-FP8" in verdict.reason
    with pytest.raises(TechniqueNotApplicableError, match="weight-activation-quant cannot apply"):
        PLUGIN.apply(base, device("a100-sxm4-80gb"), fp8)
    applied = PLUGIN.apply(base, device("h100-sxm-80gb"), fp8)
    assert _row(applied, "prefill", "q_proj").dtype == "fp8" and applied.weight_dtype == "fp8"


def test_w4a4_needs_an_int4_peak(workload, device):
    w4a4 = WeightActivationParams(weight_bits=4, activation_bits=4, group_size=128)
    verdict = PLUGIN.applicability(workload(), device("h100-sxm-80gb"), w4a4)  # Hopper has no INT4 MMA
    assert not verdict.ok and "int4" in verdict.reason
    applied = PLUGIN.apply(workload(), device("a100-sxm4-80gb"), w4a4)
    assert _row(applied, "decode", "up_proj").dtype == "int4"
    assert _row(applied, "decode", "up_proj").weight_bytes == pytest.approx(H * W * (4 + 16 / 128) / 8)
    assert not PLUGIN.applicability(workload(), device("v100-sxm2-32gb"), WeightActivationParams()).ok


def test_qserve_w4a8kv4_computes_in_int8_with_4_bit_weights_and_kv(workload, device):
    base = workload("llama-2-70b", batch=8, prompt=1024, output=64)
    qserve = WeightActivationParams(weight_bits=4, activation_bits=8, group_size=128, zero_point=True, kv_bits=4)
    applied = PLUGIN.apply(base, device("a100-sxm4-80gb"), qserve)
    row = _row(applied, "decode", "down_proj")  # Llama-2-70B: 28672 -> 8192
    assert row.dtype == "int8"
    assert row.weight_bytes == pytest.approx(28672 * 8192 * (4 + (16 + 4) / 128) / 8)
    # KV4 in groups of 128 with an fp16 scale and minimum: 4.25 bits instead of 16
    assert applied.kv_bytes_per_token == pytest.approx(base.kv_bytes_per_token * 4.25 / 16)
    assert applied.weight_dtype == "int4 g128" and applied.kv_dtype == "int4 g128"


def test_bitnet_ternary_weights_packed_in_2_bits_run_in_int8(workload, device):
    ternary = PLUGIN.apply(workload(), device("a100-sxm4-80gb"), WeightActivationParams(weight_bits=2))
    row = _row(ternary, "decode", "gate_proj")
    assert row.dtype == "int8" and row.weight_bytes == pytest.approx(H * W / 4 + 2 * W)  # 2 bits + a scale per row


def test_invalid_settings_name_the_parameter():
    with pytest.raises(InvalidInputError, match="field 'weight_bits': must be 2, 4 or 8, got 5"):
        WeightActivationParams(weight_bits=5)
    with pytest.raises(InvalidInputError, match="field 'activation_bits': 4-bit activations need 4-bit weights"):
        WeightActivationParams(weight_bits=8, activation_bits=4)
    with pytest.raises(InvalidInputError, match="field 'number_format'"):
        WeightActivationParams.parse({"number_format": "fp", "weight_bits": "4"})
    with pytest.raises(InvalidInputError, match="field 'kv_bits'"):
        WeightActivationParams(kv_bits=3)


def test_refuses_weights_that_are_already_quantized(workload, device):
    verdict = PLUGIN.applicability(workload(weight_dtype="int8"), device("a100-sxm4-80gb"), WeightActivationParams())
    assert not verdict.ok and "already int8" in verdict.reason


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b", "deepseek-v2-lite"])
@pytest.mark.parametrize("hardware", ["a100-sxm4-80gb", "h100-sxm-80gb"])
def test_conformance(workload, device, model, hardware):
    assert check_technique(PLUGIN, workload(model, batch=4, prompt=256, output=16), device(hardware)) == []
