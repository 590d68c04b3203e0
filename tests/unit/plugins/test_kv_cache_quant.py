"""KV-cache quantization: cache bytes from the bit width, group scales and the fp16 residual window."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.kv_cache_quant import PLUGIN, KvQuantParams
from llmeff.techniques.builtin.weight_only_quant import PLUGIN as WEIGHT_ONLY
from llmeff.techniques.builtin.weight_only_quant import WeightOnlyParams
from llmeff.techniques.checks import check_technique
from llmeff.techniques.pipeline import apply_techniques

K_BYTES = 32 * 128 * 2  # Llama-2-7B: one token's keys in one layer, 32 heads of 128 in fp16
PLAIN_2_BIT = KvQuantParams(bits=2, group_size=0, zero_point=False, residual_tokens=0)


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_2_bit_kv_cuts_kv_bytes_8x(workload, device):
    base = workload("llama-2-7b", batch=4, prompt=1000, output=100)
    kv2 = PLUGIN.apply(base, device("a100-sxm4-80gb"), PLAIN_2_BIT)
    assert kv2.kv_bytes_per_token == base.kv_bytes_per_token / 8
    assert kv2.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes / 8)
    for name in ("qk_matmul", "sv_matmul"):
        assert _row(kv2, "decode", name).kv_bytes_at(1050) == pytest.approx(4 * 1050 * K_BYTES / 8)
        # one scale multiply per element read: 32 x 128 per key per sequence
        assert _row(kv2, "decode", name).flops_per_context == _row(base, "decode", name).flops_per_context + 4 * 4096
    assert _row(kv2, "decode", "k_proj").kv_bytes_base == 4 * K_BYTES / 8  # the new token, written in 2 bits
    assert _row(kv2, "prefill", "qk_matmul").kv_bytes_base == _row(base, "prefill", "qk_matmul").kv_bytes_base
    assert kv2.kv_dtype == "int2"


def test_kivi_groups_and_residual_window(workload, device):
    # KIVI: 2-bit, groups of 32 with an fp16 scale and minimum (3 bits per element), 32 fp16 tokens
    base = workload("llama-2-7b", batch=1, prompt=512, output=128)
    kivi = PLUGIN.apply(base, device("a100-sxm4-80gb"), KvQuantParams())
    q = (2 + 32 / 32) / 16
    c = 600
    # keys: 1..32 fp16 keys as KIVI flushes groups of 32, 16.5 on average; values: 32 kept plus the new one
    assert _row(kivi, "decode", "qk_matmul").kv_bytes_at(c) == pytest.approx(K_BYTES * ((c - 16.5) * q + 16.5))
    assert _row(kivi, "decode", "sv_matmul").kv_bytes_at(c) == pytest.approx(K_BYTES * ((c - 33) * q + 33))
    # the new token is written in fp16, then read back and written quantized when it leaves the window
    assert _row(kivi, "decode", "v_proj").kv_bytes_base == pytest.approx(K_BYTES * (2 + q))
    # footprint: 640 tokens per layer, the newest 32 in fp16, for K and V of 32 layers
    assert kivi.memory.kv_cache_bytes == pytest.approx(32 * 2 * K_BYTES * ((640 - 32) * q + 32))
    assert kivi.kv_bytes_per_token == pytest.approx(base.kv_bytes_per_token * 3 / 16)
    # prefill: fresh fp16 K/V for the prompt's attention, plus the quantized cache of 480 tokens
    assert _row(kivi, "prefill", "k_proj").kv_bytes_base == pytest.approx(512 * K_BYTES * (1 + q * 480 / 512))
    assert kivi.kv_dtype == "int2 g32 r32"


def test_residual_covering_a_sliding_window_keeps_it_16_bit(workload, device):
    base = workload("gemma-2-9b", batch=1, prompt=512, output=64)
    applied = PLUGIN.apply(base, device("h100-sxm-80gb"), KvQuantParams(bits=4, group_size=0, residual_tokens=400))
    table = applied.decode.table
    rows = [table.row(i) for i, n in enumerate(table.names) if n == "sv_matmul"]
    window, full = sorted(rows, key=lambda r: r.context_cap)
    assert window.context_cap == 4096 and full.context_cap == float("inf")
    # gemma-2-9b: 8 KV heads of 256; 401 fp16 values (400 + the new one), the rest in 4 bits
    per_token = 8 * 256 * 2
    assert full.kv_bytes_at(560) == pytest.approx(per_token * (401 + (560 - 401) * 4 / 16))
    assert window.kv_bytes_at(560) == pytest.approx(per_token * (401 + (560 - 401) * 4 / 16))
    small = PLUGIN.apply(base, device("h100-sxm-80gb"), KvQuantParams(bits=4, group_size=0, residual_tokens=5000))
    # a residual of 5000 covers the 4096-token window and this whole 576-token generation: nothing changes
    assert small.decode.table.kv_bytes_per_context.tolist() == base.decode.table.kv_bytes_per_context.tolist()


def test_wkvquant_w4kv4_is_weight_only_quant_plus_kv_quant(workload, device):
    base = workload("llama-2-7b", batch=1, prompt=256, output=32)
    chosen = [(WEIGHT_ONLY, WeightOnlyParams(bits=4, group_size=128)),
              (PLUGIN, KvQuantParams(bits=4, group_size=128, residual_tokens=0))]
    both = apply_techniques(base, device("a100-sxm4-80gb"), chosen)
    assert [a.id for a in both.applied] == ["weight-only-quant", "kv-cache-quant"]
    assert both.kv_bytes_per_token == pytest.approx(base.kv_bytes_per_token * (4 + 32 / 128) / 16)
    assert _row(both, "decode", "q_proj").weight_bytes == pytest.approx(4096 * 4096 * (4 + 20 / 128) / 8)
    assert set(both.decode.table.dtypes) == {"fp16"}


def test_refusals_and_invalid_settings(workload, device, kb):
    from llmeff.workload.build import build_workload
    from llmeff.workload.request import WorkloadRequest

    verdict = PLUGIN.applicability(workload(kv_dtype="int8"), device("a100-sxm4-80gb"), KvQuantParams())
    assert not verdict.ok and "already int8" in verdict.reason
    mamba = build_workload(kb.model("mamba-2.8b").architecture(), WorkloadRequest())
    verdict = PLUGIN.applicability(mamba, device("a100-sxm4-80gb"), KvQuantParams())
    assert not verdict.ok and "no KV cache" in verdict.reason
    with pytest.raises(InvalidInputError, match="field 'bits': must be 2, 3, 4 or 8, got 5"):
        KvQuantParams(bits=5)
    with pytest.raises(InvalidInputError, match="field 'number_format'"):
        KvQuantParams(bits=4, number_format="fp")
    with pytest.raises(InvalidInputError, match="field 'residual_tokens'"):
        KvQuantParams.parse({"residual_tokens": "-1"})


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b", "gemma-2-9b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=300, output=40), device("h100-sxm-80gb")) == []
