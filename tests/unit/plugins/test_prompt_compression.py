"""Prompt compression: the target prefills S/r tokens; the compressor's pass over S is charged."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin import fused_attention
from llmeff.techniques.builtin.prompt_compression import PLUGIN, PromptCompressionParams
from llmeff.techniques.checks import check_technique
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def _compressor_rows(workload):
    return [r for r in workload.prefill.table.rows() if r.name.startswith("compressor_")]


def test_target_prefills_the_shorter_prompt(workload, device, registry):
    b, s, t = 2, 2048, 128
    base = workload("llama-2-7b", batch=b, prompt=s, output=t)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), PromptCompressionParams(ratio=4.0, compressor="none"))
    short = build_workload(registry[0]["llama-2-7b"], WorkloadRequest(batch=b, prompt_tokens=512, output_tokens=t))
    assert new.prompt_tokens == 512 and new.output_tokens == t
    assert new.prefill.table.flops_base.tolist() == short.prefill.table.flops_base.tolist()
    # linear terms shrink 4x, the unfused score square 16x
    assert _row(new, "prefill", "gate_proj").flops_base == _row(base, "prefill", "gate_proj").flops_base / 4
    assert _row(new, "prefill", "softmax").flops_base == _row(base, "prefill", "softmax").flops_base / 16
    assert new.memory.kv_cache_bytes == pytest.approx(b * 32 * 2 * 4096 * 2 * (512 + t))
    assert new.memory.weight_bytes == base.memory.weight_bytes


def test_llmlingua2_bert_compressor(workload, device):
    s = 2048  # four 512-token chunks for mBERT
    base = workload("llama-2-7b", batch=1, prompt=s, output=64)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), PromptCompressionParams(ratio=2.0))
    rows = _compressor_rows(new)
    # bert-base-multilingual-cased: 12 layers of q, k, v, o (768 x 768) and 768 x 3072 up and down
    per_token_layer = 2 * (4 * 768 * 768 + 2 * 768 * 3072)
    gemm = sum(r.flops_base * r.layers for r in rows if r.kind == "gemm" and r.name != "compressor_classifier")
    assert gemm == 12 * s * per_token_layer
    assert _row(new, "prefill", "compressor_classifier").flops_base == 2 * s * 768 * 2  # keep / drop per token
    # attention within each 512-token chunk: 12 heads of 64, full square (bidirectional)
    assert _row(new, "prefill", "compressor_qk_matmul").flops_base == 2 * 4 * 12 * 512 * 512 * 64
    assert "compressor_lm_head" not in new.prefill.table.names
    # mBERT's 177.3M parameters (119547 x 768 embedding, 512 positions, 12 layers) plus the classifier, fp16
    params = 119547 * 768 + 512 * 768 + 2 * 768 + 12 * (4 * (768 * 768 + 768) + 2 * 768 * 3072 + 3072 + 768
                                                          + 2 * 2 * 768) + (768 + 1) * 2
    assert new.memory.weight_bytes == base.memory.weight_bytes + params * 2


def test_llmlingua_llama_scorer_computes_every_logit(workload, device):
    s = 1000
    new = PLUGIN.apply(workload("llama-2-70b", prompt=s), device("h100-sxm-80gb"),
                       PromptCompressionParams(ratio=10.0, compressor="llama-7b"))
    assert _row(new, "prefill", "compressor_lm_head").flops_base == 2 * s * 4096 * 32000
    assert _row(new, "prefill", "compressor_gate_proj").flops_base == 2 * s * 4096 * 11008
    assert new.prompt_tokens == 100


def test_soft_prompt_keeps_a_few_tokens(workload, device):
    new = PLUGIN.apply(workload("mixtral-8x7b", prompt=3000), device("h100-sxm-80gb"),
                       PromptCompressionParams(kept_tokens=8, compressor="none"))
    assert new.prompt_tokens == 8 and _compressor_rows(new) == []


def test_invalid_parameters_name_the_field():
    with pytest.raises(InvalidInputError, match="field 'ratio': give exactly one of ratio and kept_tokens"):
        PromptCompressionParams()
    with pytest.raises(InvalidInputError, match="field 'ratio': give exactly one"):
        PromptCompressionParams(ratio=2.0, kept_tokens=10)
    with pytest.raises(InvalidInputError, match=r"field 'ratio': must be in \(1.0, 1000000\], got 0.5"):
        PromptCompressionParams(ratio=0.5)
    with pytest.raises(InvalidInputError, match="field 'compressor': must be one of bert-base"):
        PromptCompressionParams.parse({"ratio": "2", "compressor": "gpt2"})


def test_refusals_say_why(workload, device):
    a100 = device("a100-sxm4-80gb")
    fused = fused_attention.PLUGIN.apply(workload("llama-2-7b"), a100, fused_attention.FusedAttentionParams())
    assert "must run before fused-attention" in PLUGIN.applicability(fused, a100,
                                                                     PromptCompressionParams(ratio=2.0)).reason
    tiny = workload("llama-2-7b", prompt=8)
    assert "not longer than what would be kept" in PLUGIN.applicability(
        tiny, a100, PromptCompressionParams(kept_tokens=8)).reason


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "gemma-2-9b"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=1500), device("a100-sxm4-80gb")) == []
