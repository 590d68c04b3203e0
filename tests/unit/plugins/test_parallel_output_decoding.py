"""Parallel output decoding: a sequential skeleton, then P branches decoded as one wider batch."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.roofline import estimate
from llmeff.techniques.builtin import fused_attention, prompt_compression
from llmeff.techniques.builtin.parallel_output_decoding import PLUGIN, ParallelOutputParams
from llmeff.techniques.checks import check_technique
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest

KV_TOKEN = 32 * 2 * 4096 * 2  # Llama-2-7B: 32 layers, K and V of 4096, fp16


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_skeleton_of_thought(workload, device, registry):
    b, s, t, p, k = 1, 512, 128, 4, 20
    base = workload("llama-2-7b", batch=b, prompt=s, output=t)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), ParallelOutputParams(branches=p, skeleton_tokens=k))
    assert (new.batch, new.prompt_tokens, new.output_tokens) == (4, 532, 32)
    branches = build_workload(registry[0]["llama-2-7b"], WorkloadRequest(batch=4, prompt_tokens=532, output_tokens=32))
    assert new.decode.table.names == branches.decode.table.names
    assert new.decode.table.kv_bytes_per_context.tolist() == branches.decode.table.kv_bytes_per_context.tolist()
    # 19 skeleton steps at batch 1 (contexts 513..531, mean 522), each reading every weight
    skeleton = _row(new, "prefill", "skeleton_gate_proj")
    assert (skeleton.layers, skeleton.weight_bytes) == (32 * 19, 4096 * 11008 * 2)
    assert _row(new, "prefill", "skeleton_qk_matmul").kv_bytes_base == 4096 * 2 * 522
    # each point is its own request: its prompt (question + skeleton) is prefilled again at batch 4
    assert _row(new, "prefill", "branch_up_proj").flops_base == 2 * 4 * 532 * 4096 * 11008
    assert new.memory.kv_cache_bytes == pytest.approx(4 * (532 + 32) * KV_TOKEN)
    # the answer still has B x T tokens
    a100 = device("a100-sxm4-80gb")
    e = estimate(new, a100)
    assert e.output_tokens_per_s == pytest.approx(b * t / e.e2e_latency_s)
    assert new.prefill.tokens == s + (k - 1) + 4 * 532


def test_apar_shares_the_prefix(workload, device):
    base = workload("llama-2-7b", batch=2, prompt=512, output=128)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), ParallelOutputParams(branches=4, skeleton_tokens=8,
                                                                            shared_prefix=True))
    assert "branch_up_proj" not in new.prefill.table.names
    fork = _row(new, "prefill", "fork_up_proj")  # one decode step of the 8 branches starts them
    assert (fork.layers, fork.flops_base) == (32, 2 * 8 * 4096 * 11008)
    # two prefixes of 520 tokens held once, plus 4 x 32 branch tokens each
    assert new.memory.kv_cache_bytes == pytest.approx(2 * (520 + 4 * 32) * KV_TOKEN)


def test_after_prompt_compression(workload, device):
    a100 = device("a100-sxm4-80gb")
    short = prompt_compression.PLUGIN.apply(workload("llama-2-7b", prompt=2000), a100,
                                            prompt_compression.PromptCompressionParams(ratio=4.0))
    new = PLUGIN.apply(short, a100, ParallelOutputParams(branches=2, skeleton_tokens=10))
    assert new.prompt_tokens == 500 + 10
    assert any(name.startswith("compressor_") for name in new.prefill.table.names)
    assert [a.id for a in new.applied] == ["prompt-compression", "parallel-output-decoding"]


def test_invalid_parameters_name_the_field():
    with pytest.raises(InvalidInputError, match=r"field 'branches': must be in \[2, 1024\], got 1"):
        ParallelOutputParams(branches=1, skeleton_tokens=5)
    with pytest.raises(InvalidInputError, match="field 'skeleton_tokens': required"):
        ParallelOutputParams(branches=3)
    with pytest.raises(InvalidInputError, match="field 'branches': required"):
        ParallelOutputParams.parse({})


def test_refusals_say_why(workload, device):
    a100 = device("a100-sxm4-80gb")
    params = ParallelOutputParams(branches=4, skeleton_tokens=20)
    few = workload("llama-2-7b", output=3)
    assert "4 branches for 3 output tokens" in PLUGIN.applicability(few, a100, params).reason
    fused = fused_attention.PLUGIN.apply(workload("llama-2-7b"), a100, fused_attention.FusedAttentionParams())
    assert "must run before fused-attention" in PLUGIN.applicability(fused, a100, params).reason
    long = workload("llama-2-7b", prompt=4000, output=64)  # 4000 + 200 exceeds Llama-2's 4096 positions
    verdict = PLUGIN.applicability(long, a100, ParallelOutputParams(branches=2, skeleton_tokens=200))
    assert not verdict.ok and "do not fit the model" in verdict.reason


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "gemma-2-9b"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2), device("h100-sxm-80gb")) == []
