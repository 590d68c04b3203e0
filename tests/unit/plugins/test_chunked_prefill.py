"""Chunked prefill: weights re-read per chunk, chunk i attends to i x c keys, the last chunk optionally padded."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.techniques.builtin.chunked_prefill import PLUGIN, ChunkedPrefillParams, chunk_passes
from llmeff.techniques.builtin.fused_attention import PLUGIN as FUSED
from llmeff.techniques.builtin.fused_attention import FusedAttentionParams
from llmeff.techniques.checks import check_technique

H, D, MLP = 32, 128, 11008  # Llama-2-7B: 32 heads of 128, MLP width 11008, 32 layers, hidden 4096
LAYER_WEIGHTS = (4 * 4096 * 4096 + 3 * 4096 * MLP) * 2  # fp16 GEMM weights of one layer


def total(table, column, name=None):
    return sum(getattr(table, column)[i] * table.layers[i] for i, n in enumerate(table.names) if name in (None, n))


def test_four_chunks_reread_weights_and_the_growing_kv(workload, device):
    s, c = 1024, 256
    base = workload("llama-2-7b", batch=1, prompt=s, output=8)
    chunked = PLUGIN.apply(base, device("a100-sxm4-80gb"), ChunkedPrefillParams(chunk_size=c))
    t = chunked.prefill.table
    # every layer GEMM streams its weights once per chunk; LM head once; the embedding gathers 1024 rows
    gemm = sum(t.weight_bytes[i] * t.layers[i] for i, k in enumerate(t.kinds)
               if k == "gemm" and t.names[i] != "lm_head")
    assert gemm == pytest.approx(4 * 32 * LAYER_WEIGHTS)
    assert total(t, "weight_bytes", "lm_head") == 32000 * 4096 * 2
    assert total(t, "weight_bytes", "embedding") == pytest.approx(s * 4096 * 2)
    # unfused chunk i computes a 256 x 256i score rectangle: 256^2 (1+2+3+4) scores per head
    assert total(t, "flops_base", "qk_matmul") == pytest.approx(32 * 2 * D * H * c * c * 10)
    # and reads back K of the 256 i keys written so far: 2560 keys in all, K of 4096 fp16 values each
    assert total(t, "kv_bytes_base", "qk_matmul") == pytest.approx(32 * 2560 * 4096 * 2)
    assert set(t.layers[[i for i, n in enumerate(t.names) if n == "q_proj"]]) == {32 * 4}  # 4 launches per layer
    # peak activation: the last chunk's softmax over 32 x 256 x 1024 scores, read and written
    assert chunked.memory.activation_bytes == 32 * 256 * 1024 * 2 * 2
    assert chunked.decode.table is base.decode.table


def test_uneven_prompt_has_a_short_last_chunk_and_padding_fills_it(workload, device):
    passes = chunk_passes(1000, 256, pad=False)
    assert [(p.count, p.queries, p.mean_keys, p.max_keys) for p in passes] == [(3, 256, 512, 768), (1, 232, 1000, 1000)]
    base = workload("llama-2-7b", batch=2, prompt=1000, output=8)
    a100 = device("a100-sxm4-80gb")
    plain = PLUGIN.apply(base, a100, ChunkedPrefillParams(chunk_size=256))
    scores = 256 * 256 + 256 * 512 + 256 * 768 + 232 * 1000  # per sequence and head
    assert total(plain.prefill.table, "flops_base", "qk_matmul") == pytest.approx(32 * 2 * 2 * D * H * scores)
    padded = PLUGIN.apply(base, a100, ChunkedPrefillParams(chunk_size=256, pad_last_chunk=True))
    assert padded.prefill.tokens == 2 * 1024  # 24 pad tokens per sequence computed
    assert total(padded.prefill.table, "flops_base", "down_proj") == pytest.approx(
        total(base.prefill.table, "flops_base", "down_proj") * 1024 / 1000)
    assert "24 pad tokens computed" in padded.applied[-1].changes[0]


def test_fused_causal_attention_adds_no_flops_only_kv_reads(workload, device):
    a100 = device("a100-sxm4-80gb")
    fused = FUSED.apply(workload("llama-2-7b", prompt=1000, output=8), a100, FusedAttentionParams())
    chunked = PLUGIN.apply(fused, a100, ChunkedPrefillParams(chunk_size=300))
    # chunk rectangles minus their masked triangles tile the causal triangle S(S+1)/2 exactly
    assert total(chunked.prefill.table, "flops_base", "fused_attention") == pytest.approx(
        total(fused.prefill.table, "flops_base", "fused_attention"))
    keys = 300 + 600 + 900 + 1000  # K and V read per chunk
    assert total(chunked.prefill.table, "kv_bytes_base", "fused_attention") == pytest.approx(32 * keys * 2 * 4096 * 2)


def test_moe_chunks_read_the_experts_their_tokens_reach(workload, device):
    # Mixtral: 8 experts, 2 per token; a chunk of 2 tokens reaches 8 (1 - (6/8)^2) = 3.5 experts on average
    base = workload("mixtral-8x7b", batch=1, prompt=64, output=4)
    chunked = PLUGIN.apply(base, device("h100-sxm-80gb"), ChunkedPrefillParams(chunk_size=2))
    expert = 4096 * 14336 * 2  # one expert's up projection, fp16
    all_64 = 8 * (1 - (6 / 8) ** 64)
    i, j = base.prefill.table.index("expert_up"), chunked.prefill.table.index("expert_up")
    assert base.prefill.table.weight_bytes[i] == pytest.approx(all_64 * expert)
    assert chunked.prefill.table.weight_bytes[j] == pytest.approx(3.5 * expert)
    assert chunked.prefill.table.layers[j] == 32 * 32


def test_invalid_chunk_and_refusals(workload, device):
    with pytest.raises(InvalidInputError, match="field 'chunk_size': must be between 1 and"):
        ChunkedPrefillParams(chunk_size=0)
    base = workload("llama-2-7b", prompt=400)
    verdict = PLUGIN.applicability(base, device("a100-sxm4-80gb"), ChunkedPrefillParams(chunk_size=512))
    assert not verdict.ok and "unchunked prefill" in verdict.reason
    with pytest.raises(TechniqueNotApplicableError):
        PLUGIN.apply(base, device("a100-sxm4-80gb"), ChunkedPrefillParams(chunk_size=512))
    # a static-shape NPU graph pads a short prompt to one whole chunk
    npu = PLUGIN.apply(base, device("snapdragon-8-gen-3"), ChunkedPrefillParams(chunk_size=512, pad_last_chunk=True))
    assert npu.prefill.tokens == 512


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "gemma-2-9b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    base = workload(model, batch=2, prompt=3000, output=20)
    assert check_technique(PLUGIN, base, device("a100-sxm4-80gb")) == []
    assert check_technique(PLUGIN, base, device("snapdragon-8-gen-3")) == []
