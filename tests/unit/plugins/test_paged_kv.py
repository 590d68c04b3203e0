"""Paged KV: the footprint rounds each sequence up to whole blocks; a contiguous reservation holds far less."""

from __future__ import annotations

import math

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.techniques.builtin.paged_kv import PLUGIN, PagedKVParams
from llmeff.techniques.checks import check_technique

# Llama-2-7B (config.json): 32 layers, 32 KV heads of 128, fp16 KV -> K and V of 4096 values per layer
KV_BYTES_PER_TOKEN = 2 * 32 * 4096 * 2
# parameters: untied embedding and LM head, per layer 4 attention + 3 MLP matrices and 2 norms, final norm
LLAMA_7B_PARAMS = 2 * 32000 * 4096 + 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096) + 4096


def test_paged_footprint_rounds_to_blocks_and_reports_both_batches(workload, device):
    batch, prompt, output = 8, 1000, 190  # 1190 tokens -> 75 blocks of 16 = 1200 slots
    base = workload("llama-2-7b", batch=batch, prompt=prompt, output=output)
    assert base.memory.kv_cache_bytes == batch * 1190 * KV_BYTES_PER_TOKEN
    paged = PLUGIN.apply(base, device("a100-sxm4-80gb"), PagedKVParams())
    assert paged.memory.kv_cache_bytes == pytest.approx(batch * 1200 * KV_BYTES_PER_TOKEN)
    # largest batch beside the fp16 weights in 80 GB; each sequence also brings its prefill activations,
    # whose peak is the softmax over 32 heads x 1000^2 fp16 scores, read and written
    free = 80e9 - LLAMA_7B_PARAMS * 2
    activation = 32 * 1000 * 1000 * 2 * 2
    contiguous = math.floor(free / (4096 * KV_BYTES_PER_TOKEN + activation))  # Llama-2's 4096-token context
    fits = math.floor(free / (1200 * KV_BYTES_PER_TOKEN + activation))
    assert (contiguous, fits) == (29, 87)
    changes = paged.applied[-1].changes
    assert f"{contiguous} with contiguous 4096-token reservations, {fits} paged" in changes[-1]
    assert f"({100 * 1190 / 4096:.1f}% holding token states" in changes[1]
    # per-step traffic is unchanged: attention reads the tokens a sequence holds
    assert paged.decode.table is base.decode.table and paged.prefill.table is base.prefill.table


def test_token_granularity_wastes_nothing_and_reservation_is_a_parameter(workload, device):
    base = workload("llama-2-7b", batch=2, prompt=300, output=33)
    token = PLUGIN.apply(base, device("h100-sxm-80gb"), PagedKVParams(block_size=1, reserve_tokens=2048))
    assert token.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes)
    assert "a contiguous allocator reserving 2048 tokens" in token.applied[-1].changes[1]
    assert f"{100 * 333 / 2048:.1f}% holding token states" in token.applied[-1].changes[1]


def test_sliding_window_layers_keep_only_their_window(workload, device):
    # Gemma-2-9B: 42 layers, every other one with a 4096-token window; 5100 tokens per sequence
    base = workload("gemma-2-9b", batch=1, prompt=5000, output=100)
    paged = PLUGIN.apply(base, device("h100-sxm-80gb"), PagedKVParams(block_size=16))
    exact, rounded = 21 * 5100 + 21 * 4096, 21 * 5104 + 21 * 4096
    assert paged.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes * rounded / exact)


def test_invalid_params_name_the_field():
    with pytest.raises(InvalidInputError, match="field 'block_size': must be between 1 and 1024 tokens, got 0"):
        PagedKVParams(block_size=0)
    with pytest.raises(InvalidInputError, match="field 'reserve_tokens'"):
        PagedKVParams.parse({"reserve_tokens": "-5"})


def test_refuses_a_reservation_shorter_than_the_sequence(workload, device):
    base = workload("llama-2-7b", prompt=1000, output=100)
    verdict = PLUGIN.applicability(base, device("a100-sxm4-80gb"), PagedKVParams(reserve_tokens=512))
    assert not verdict.ok and "cannot hold prompt + output = 1100 tokens" in verdict.reason
    with pytest.raises(TechniqueNotApplicableError, match="paged-kv cannot apply"):
        PLUGIN.apply(base, device("a100-sxm4-80gb"), PagedKVParams(reserve_tokens=512))


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    base = workload(model, batch=3, prompt=700, output=50)
    assert check_technique(PLUGIN, base, device("a100-sxm4-80gb")) == []
    assert check_technique(PLUGIN, base, device("snapdragon-8-gen-3")) == []  # no capacity listed: still applies
