"""KV eviction: decode attention and the KV footprint stop growing at the budget."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import decode_at
from llmeff.techniques.builtin import fused_attention
from llmeff.techniques.builtin.kv_eviction import PLUGIN, KvEvictionParams
from llmeff.techniques.checks import check_technique
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest

# Llama-2-7B (config.json): 32 layers, 32 heads of 128, MHA; fp16 K and V per token and layer
LAYERS, HEADS, HEAD_DIM = 32, 32, 128
KV_TOKEN_LAYER = 2 * HEADS * HEAD_DIM * 2


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_window_caps_decode_reads_and_the_footprint(workload, device):
    b, s, t = 2, 3000, 256
    base = workload("llama-2-7b", batch=b, prompt=s, output=t)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), KvEvictionParams())  # 4 sinks + 2000 recent
    # K read per step: batch x 32 heads x 128 x 2 bytes per kept key, at most 2004 keys
    assert _row(new, "decode", "qk_matmul").kv_bytes_at(3100) == b * HEADS * HEAD_DIM * 2 * 2004
    assert new.memory.kv_cache_bytes == pytest.approx(b * LAYERS * KV_TOKEN_LAYER * 2004)
    assert base.memory.kv_cache_bytes == pytest.approx(b * LAYERS * KV_TOKEN_LAYER * (s + t))
    # past the budget a decode step no longer depends on the context
    a100 = device("a100-sxm4-80gb")
    assert decode_at(new, a100, 3200).roofline_time_s == pytest.approx(decode_at(new, a100, 2004).roofline_time_s)
    assert decode_at(base, a100, 3200).roofline_time_s > decode_at(new, a100, 3200).roofline_time_s
    assert new.prefill.table.flops_base.tolist() == base.prefill.table.flops_base.tolist()


def test_gqa_footprint(workload, device):
    # Llama-2-70B: 80 layers, 8 KV heads of 128
    new = PLUGIN.apply(workload("llama-2-70b", batch=3, prompt=3000, output=100), device("h100-sxm-80gb"),
                       KvEvictionParams(budget_tokens=1000))
    assert new.memory.kv_cache_bytes == pytest.approx(3 * 80 * 2 * 8 * 128 * 2 * 1000)


def test_heavy_hitter_bookkeeping_rows(workload, device):
    b, s, budget = 1, 2000, 400
    new = PLUGIN.apply(workload("llama-2-7b", batch=b, prompt=s, output=64), device("a100-sxm4-80gb"),
                       KvEvictionParams(policy="heavy-hitter", budget_tokens=budget))
    step = _row(new, "decode", "kv_score_update")
    # per head and kept key: add the probability, then a top-k pass; 4 fp16 accesses (H2O _update_hh_score)
    assert (step.layers, step.flops_per_context, step.context_cap) == (LAYERS, 2 * b * HEADS, budget)
    assert step.activation_bytes_per_context == 4 * b * HEADS * 2
    once = _row(new, "prefill", "kv_score_update")
    assert once.flops_base == b * HEADS * (s * s + s)  # sum of the S x S probabilities over the queries
    assert new.memory.kv_cache_bytes == pytest.approx(b * LAYERS * KV_TOKEN_LAYER * budget)


def test_snapkv_keeps_generated_tokens(workload, device):
    b, s, t, kept = 2, 3000, 64, 1024
    new = PLUGIN.apply(workload("llama-2-7b", batch=b, prompt=s, output=t), device("a100-sxm4-80gb"),
                       KvEvictionParams(policy="prompt-only", budget_tokens=kept))
    assert new.memory.kv_cache_bytes == pytest.approx(b * LAYERS * KV_TOKEN_LAYER * (kept + t))
    # step j reads kept + j keys: the mean over the generation is kept + T/2
    assert _row(new, "decode", "sv_matmul").context_cap == kept + t / 2
    select = _row(new, "prefill", "kv_select")
    window = 32  # SnapKV's observation window
    assert select.flops_base == b * HEADS * (window * s * (2 * HEAD_DIM + 5 + 1) + s * (5 + 1))
    k_bytes = b * s * HEADS * HEAD_DIM * 2
    assert select.kv_bytes_base == pytest.approx(k_bytes + 2 * 2 * k_bytes * kept / s)


def test_quest_reads_the_budget_but_keeps_the_cache(workload, device):
    b = 1
    base = workload("llama-2-7b", batch=b, prompt=3000, output=64)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), KvEvictionParams(policy="query-aware", budget_tokens=256))
    assert _row(new, "decode", "qk_matmul").context_cap == 256
    # a min and a max key per 16-token page: MHA metadata is 1/16 of the KV
    assert new.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes * (1 + 1 / 16))
    pages = _row(new, "decode", "kv_page_scores")
    assert pages.kv_bytes_per_context == 2 * b * HEADS * HEAD_DIM * 2 / 16
    assert pages.flops_per_context == b * HEADS * (4 * HEAD_DIM + 1) / 16
    assert pages.context_cap == float("inf")  # every page's metadata is scored


def test_sliding_window_layers_keep_the_smaller_cap(workload, device):
    new = PLUGIN.apply(workload("gemma-2-9b", prompt=6000, output=1000), device("h100-sxm-80gb"),
                       KvEvictionParams(budget_tokens=5000))
    caps = sorted(r.context_cap for r in new.decode.table.rows() if r.name == "qk_matmul")
    assert caps == [4096, 5000]  # Gemma-2's 4096-token window layers, then the budget


def test_invalid_parameters_name_the_field():
    with pytest.raises(InvalidInputError, match="field 'policy': must be one of window, heavy-hitter"):
        KvEvictionParams(policy="lru")
    with pytest.raises(InvalidInputError, match=r"field 'sink_tokens': must be in \[0, 9\], got 10"):
        KvEvictionParams(budget_tokens=10, sink_tokens=10)
    with pytest.raises(InvalidInputError, match="field 'observation_window'"):
        KvEvictionParams(policy="prompt-only", budget_tokens=32)
    with pytest.raises(InvalidInputError, match=r"field 'page_size': must be in \[1, 10\], got 16"):
        KvEvictionParams(policy="query-aware", budget_tokens=10)
    with pytest.raises(InvalidInputError, match="field 'budget_tokens'"):
        KvEvictionParams.parse({"budget_tokens": "0"})


def test_refusals_say_why(workload, device, kb):
    a100 = device("a100-sxm4-80gb")
    short = workload("llama-2-7b", prompt=512, output=128)
    verdict = PLUGIN.applicability(short, a100, KvEvictionParams())
    assert not verdict.ok and "never exceeds the budget of 2004" in verdict.reason
    with pytest.raises(TechniqueNotApplicableError, match="kv-eviction cannot apply"):
        PLUGIN.apply(short, a100, KvEvictionParams())
    fused = fused_attention.PLUGIN.apply(workload("llama-2-7b", prompt=3000), a100,
                                         fused_attention.FusedAttentionParams())
    assert "before fused-attention" in PLUGIN.applicability(fused, a100, KvEvictionParams()).reason
    mamba = build_workload(kb.model("mamba-2.8b").architecture(), WorkloadRequest(prompt_tokens=3000))
    assert "state-space" in PLUGIN.applicability(mamba, a100, KvEvictionParams()).reason


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=3000, output=128), device("a100-sxm4-80gb")) == []
