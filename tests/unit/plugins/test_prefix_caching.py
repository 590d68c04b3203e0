"""Prefix caching: (1 - h) S query tokens still attend to all S keys; a shared prefix is stored once."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import estimate
from llmeff.techniques.builtin.fused_attention import PLUGIN as FUSED
from llmeff.techniques.builtin.fused_attention import FusedAttentionParams
from llmeff.techniques.builtin.prefix_caching import PLUGIN, PrefixCachingParams
from llmeff.techniques.checks import check_technique

KV_BYTES_PER_TOKEN = 2 * 32 * 4096 * 2  # Llama-2-7B: K and V of 4096 fp16 values in 32 layers


def row_total(table, column, name):
    return sum(getattr(table, column)[i] * table.layers[i] for i, n in enumerate(table.names) if n == name)


def test_half_the_prompt_cached(workload, device):
    b, s = 4, 1000
    base = workload("llama-2-7b", batch=b, prompt=s, output=200)
    cached = PLUGIN.apply(base, device("a100-sxm4-80gb"), PrefixCachingParams(hit_ratio=0.5))
    t0, t1 = base.prefill.table, cached.prefill.table
    for name in ("q_proj", "down_proj", "mlp_act"):  # per-token rows: half the tokens
        assert row_total(t1, "flops_base", name) == pytest.approx(row_total(t0, "flops_base", name) / 2)
    assert row_total(t1, "weight_bytes", "down_proj") == row_total(t0, "weight_bytes", "down_proj")  # one pass
    # 500 queries against 1000 keys: half the (unfused, full-square) scores; K of all 1000 keys read
    assert row_total(t1, "flops_base", "qk_matmul") == pytest.approx(32 * 2 * 128 * 32 * b * 500 * 1000)
    assert row_total(t1, "kv_bytes_base", "qk_matmul") == row_total(t0, "kv_bytes_base", "qk_matmul")
    assert row_total(t1, "flops_base", "lm_head") == row_total(t0, "flops_base", "lm_head")
    assert cached.prefill.tokens == b * 500
    # the shared 500-token prefix is stored once instead of 4 times
    assert cached.memory.kv_cache_bytes == pytest.approx((b * 1200 - (b - 1) * 500) * KV_BYTES_PER_TOKEN)
    own = PLUGIN.apply(base, device("a100-sxm4-80gb"), PrefixCachingParams(hit_ratio=0.5, shared=False))
    assert own.memory.kv_cache_bytes == base.memory.kv_cache_bytes


def test_fused_causal_attention_computes_the_unmasked_rectangle(workload, device):
    a100 = device("a100-sxm4-80gb")
    fused = FUSED.apply(workload("llama-2-7b", prompt=1000, output=8), a100, FusedAttentionParams())
    cached = PLUGIN.apply(fused, a100, PrefixCachingParams(hit_ratio=0.9))
    # 100 new queries: 100 x 900 cached keys plus a 100-token causal triangle, against 1000 x 1001 / 2
    ratio = (100 * 900 + 100 * 101 / 2) / (1000 * 1001 / 2)
    assert row_total(cached.prefill.table, "flops_base", "fused_attention") == pytest.approx(
        row_total(fused.prefill.table, "flops_base", "fused_attention") * ratio)


def test_hit_ratio_leaves_the_last_token_to_compute(workload, device):
    base = workload("llama-2-7b", prompt=100, output=4)
    cached = PLUGIN.apply(base, device("h100-sxm-80gb"), PrefixCachingParams(hit_ratio=0.999))
    assert cached.prefill.tokens == 1  # 99 cached, the last position computed for the first output token


def test_host_fetch_over_the_link(workload, device):
    a100 = device("a100-sxm4-80gb")
    base = workload("llama-2-7b", batch=2, prompt=1000, output=10)
    fetched = PLUGIN.apply(base, a100, PrefixCachingParams(hit_ratio=0.5, source="host", compression_ratio=4.0))
    row = fetched.prefill.table.row(fetched.prefill.table.index("prefix_kv_fetch"))
    assert (row.resource, row.kv_bytes_base) == ("host-link", pytest.approx(500 * KV_BYTES_PER_TOKEN / 4))
    # PCIe 4 x16 is listed as 64 GB/s both ways together: 32 GB/s one way
    op = next(o for o in estimate(fetched, a100).prefill.operators if o.name == "prefix_kv_fetch")
    assert op.roofline_time_s == pytest.approx(500 * KV_BYTES_PER_TOKEN / 4 / 32e9)


def test_invalid_params_and_refusals(workload, device, pcie_unmeasured):
    with pytest.raises(InvalidInputError, match="field 'hit_ratio': must be between 0 and 1"):
        PrefixCachingParams(hit_ratio=1.5)
    with pytest.raises(InvalidInputError, match="field 'source': must be one of device, host, got 'disk'"):
        PrefixCachingParams(source="disk")
    with pytest.raises(InvalidInputError, match="field 'compression_ratio': applies only to KV fetched"):
        PrefixCachingParams(compression_ratio=3.5)
    base = workload("llama-2-7b", prompt=512)
    host = PrefixCachingParams(source="host")
    verdict = PLUGIN.applicability(base, pcie_unmeasured, host)
    assert not verdict.ok and "no host link bandwidth" in verdict.reason
    with pytest.raises(TechniqueNotApplicableError):
        PLUGIN.apply(base, device("snapdragon-8-gen-3"), host)
    assert "caches no whole token" in PLUGIN.applicability(workload("llama-2-7b", prompt=1), device("a100-sxm4-80gb"),
                                                           PrefixCachingParams()).reason


def test_does_not_stack_with_chunked_prefill(workload, device):
    from llmeff.techniques.builtin.chunked_prefill import PLUGIN as CHUNKED
    from llmeff.techniques.builtin.chunked_prefill import ChunkedPrefillParams

    a100 = device("a100-sxm4-80gb")
    cached = PLUGIN.apply(workload("llama-2-7b", prompt=2048), a100, PrefixCachingParams())
    verdict = CHUNKED.applicability(cached, a100, ChunkedPrefillParams(chunk_size=256))
    assert not verdict.ok and "prefix-caching already split the prefill" in verdict.reason
    chunked = CHUNKED.apply(workload("llama-2-7b", prompt=2048), a100, ChunkedPrefillParams(chunk_size=256))
    assert "chunked-prefill already split the prefill" in PLUGIN.applicability(chunked, a100,
                                                                               PrefixCachingParams()).reason


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    base = workload(model, batch=3, prompt=900, output=30)
    assert check_technique(PLUGIN, base, device("a100-sxm4-80gb")) == []
    assert check_technique(PLUGIN, base, device("snapdragon-8-gen-3")) == []
