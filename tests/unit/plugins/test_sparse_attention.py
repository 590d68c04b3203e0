"""Sparse attention: prefill score work scales with the pattern's density; BigBird also caps decode."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin import fused_attention
from llmeff.techniques.builtin.sparse_attention import PLUGIN, SparseAttentionParams
from llmeff.techniques.checks import check_technique
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_bigbird_counts_the_pattern_and_caps_decode(workload, device):
    s = 2048
    base = workload("llama-2-7b", prompt=s, output=64)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), SparseAttentionParams())
    k = 64 * (3 + 2 + 3)  # block 64: 3 window, 2 global, 3 random blocks = 512 keys per query
    computed = k * (k + 1) / 2 + (s - k) * k  # queries 1..512 see all earlier keys, the rest 512
    assert computed == 917760
    for name in ("qk_matmul", "softmax", "sv_matmul"):
        assert _row(new, "prefill", name).flops_base == pytest.approx(
            _row(base, "prefill", name).flops_base * computed / s**2)
    # an unfused block-sparse kernel writes and reads only the computed scores (fp16, 32 heads)
    assert _row(new, "prefill", "softmax").activation_bytes_base == pytest.approx(2 * 32 * computed * 2)
    q_bytes = s * 32 * 128 * 2
    assert _row(new, "prefill", "qk_matmul").activation_bytes_base == pytest.approx(q_bytes + 32 * computed * 2)
    assert _row(new, "prefill", "qk_matmul").kv_bytes_base == _row(base, "prefill", "qk_matmul").kv_bytes_base
    assert _row(new, "decode", "qk_matmul").kv_bytes_at(2100) == 32 * 128 * 2 * k
    assert new.memory.kv_cache_bytes == base.memory.kv_cache_bytes  # random blocks reach the whole cache


def test_minference_prefill_only_with_fused_kernels(workload, device):
    s = 16000
    base = workload("mixtral-8x7b", prompt=s, output=32)  # 32 heads of 128, 8 KV heads
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), SparseAttentionParams(pattern="dynamic"))
    k = 1000 + 6096
    fraction = (k * (k + 1) / 2 + (s - k) * k) / s**2
    assert _row(new, "prefill", "sv_matmul").flops_base == pytest.approx(_row(base, "prefill", "sv_matmul").flops_base
                                                                         * fraction)
    assert _row(new, "prefill", "softmax").activation_bytes_base == 0  # scores stay on chip
    assert _row(new, "prefill", "qk_matmul").activation_bytes_base == pytest.approx(s * 32 * 128 * 2)
    estimate = _row(new, "prefill", "sparse_index_estimate")
    assert estimate.flops_base == pytest.approx(32 * 64 * s * (2 * 128 + 5 + 2))  # last 64 queries, every key
    assert estimate.kv_bytes_base == s * 8 * 128 * 2
    assert new.decode.table.flops_per_context.tolist() == base.decode.table.flops_per_context.tolist()
    assert set(new.decode.table.context_cap.tolist()) == {float("inf")}


def test_density_is_of_the_causal_triangle(workload, device):
    s = 8000
    base = workload("qwen1.5-1.8b", prompt=s, output=16)
    new = PLUGIN.apply(base, device("h100-sxm-80gb"), SparseAttentionParams(pattern="dynamic", density=0.1))
    assert _row(new, "prefill", "qk_matmul").flops_base == pytest.approx(
        _row(base, "prefill", "qk_matmul").flops_base * 0.1 * (s + 1) / (2 * s))


def test_invalid_parameters_name_the_field():
    with pytest.raises(InvalidInputError, match="field 'density': applies to pattern 'dynamic' only"):
        SparseAttentionParams(density=0.2)
    with pytest.raises(InvalidInputError, match=r"field 'density': must be in \(0.0, 1.0\], got 1.5"):
        SparseAttentionParams(pattern="dynamic", density=1.5)
    with pytest.raises(InvalidInputError, match="field 'pattern': must be one of bigbird, dynamic"):
        SparseAttentionParams.parse({"pattern": "longformer"})


def test_refusals_say_why(workload, device, kb):
    a100 = device("a100-sxm4-80gb")
    short = workload("llama-2-7b", prompt=4000, output=64)
    assert "within the pattern's 7096 keys" in PLUGIN.applicability(short, a100,
                                                                     SparseAttentionParams(pattern="dynamic")).reason
    tiny = workload("llama-2-7b", prompt=300, output=100)
    assert "never exceeds" in PLUGIN.applicability(tiny, a100, SparseAttentionParams()).reason
    fused = fused_attention.PLUGIN.apply(short, a100, fused_attention.FusedAttentionParams())
    assert "before fused-attention" in PLUGIN.applicability(fused, a100, SparseAttentionParams()).reason
    mamba = build_workload(kb.model("mamba-2.8b").architecture(), WorkloadRequest(prompt_tokens=3000))
    assert "no attention" in PLUGIN.applicability(mamba, a100, SparseAttentionParams()).reason


@pytest.mark.parametrize("model, prompt", [("llama-2-7b", 3000), ("mixtral-8x7b", 12000),
                                           ("deepseek-v2-lite", 12000), ("gemma-2-9b", 6000)])
def test_conformance(workload, device, model, prompt):
    assert check_technique(PLUGIN, workload(model, prompt=prompt, output=64), device("a100-sxm4-80gb")) == []
