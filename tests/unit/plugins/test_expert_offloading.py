"""Expert offloading: cache misses fetch expert weights over the host link; dense models refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.expert_offloading import PLUGIN, ExpertOffloadingParams
from llmeff.techniques.checks import check_technique

# Mixtral-8x7B (config.json): hidden 4096, 8 experts of width 14336, top-2, 32 layers; fp16
EXPERT = 3 * 4096 * 14336 * 2  # gate, up and down of one expert in one layer, bytes
LAYERS, EXPERTS = 32, 8


def _fetched(workload, phase):
    table = getattr(workload, phase).table
    return sum(r.weight_bytes * r.layers for r in table.rows() if r.name.startswith("fetch_"))


def test_batch_one_decode_fetches_the_missed_share_of_two_experts(workload, device):
    h100 = device("h100-sxm-80gb")
    base = workload("mixtral-8x7b")
    half = PLUGIN.apply(base, h100, ExpertOffloadingParams(cache_experts=4))
    # KB cost effect: (1 - h) k W_expert per layer, h = 4/8 under uniform routing
    assert _fetched(half, "decode") == pytest.approx((1 - 4 / 8) * 2 * EXPERT * LAYERS)
    assert {r.resource for r in half.decode.table.rows() if r.name.startswith("fetch_")} == {"host-link"}
    measured = PLUGIN.apply(base, h100, ExpertOffloadingParams(cache_experts=4, hit_rate=0.9))
    assert _fetched(measured, "decode") == pytest.approx(0.1 * 2 * EXPERT * LAYERS)
    # memory: half the experts leave; one layer's prefill experts (all 8 for 512 tokens) land in a buffer
    buffer = EXPERTS * (1 - (1 - 2 / EXPERTS) ** 512) * EXPERT
    assert half.memory.weight_bytes == pytest.approx(base.memory.weight_bytes - EXPERTS * LAYERS * EXPERT / 2
                                                     + buffer)


def test_cache_sized_to_fit_the_device(workload, device):
    a100 = device("a100-sxm4-80gb")
    base = workload("mixtral-8x7b")  # 93 GB of fp16 weights
    fit = PLUGIN.apply(base, a100, ExpertOffloadingParams())
    cached = int(fit.applied[-1].changes[0].split(" of ")[0])
    assert 0 < cached < EXPERTS and fit.memory.total_bytes <= 80e9
    assert fit.memory.total_bytes + LAYERS * EXPERT > 80e9  # one more expert per layer would not fit


def test_dense_models_and_bad_settings_are_refused(workload, device):
    h100 = device("h100-sxm-80gb")
    assert PLUGIN.applicability(workload("llama-2-7b"), h100, ExpertOffloadingParams(cache_experts=2)).reason == \
        "a dense model has no experts to offload"
    assert PLUGIN.applicability(workload("mixtral-8x7b"), h100, ExpertOffloadingParams(cache_experts=9)).reason == \
        "cache_experts 9 exceeds the 8 experts per layer"
    with pytest.raises(InvalidInputError, match="field 'hit_rate': must be between 0 and 1, got 1.5"):
        ExpertOffloadingParams(hit_rate=1.5)
    with pytest.raises(InvalidInputError, match="field 'cache_experts'"):
        ExpertOffloadingParams(cache_experts=-1)
    card = device("rtx-4090-24gb")
    unmeasured = replace(card, host_link=replace(card.host_link, bandwidth_bytes_per_s=None))
    assert "without a bandwidth" in PLUGIN.applicability(workload("mixtral-8x7b"), unmeasured,
                                                         ExpertOffloadingParams(cache_experts=2)).reason


@pytest.mark.parametrize("model,hardware", [("mixtral-8x7b", "a100-sxm4-80gb"), ("deepseek-v2-lite", "h100-sxm-80gb"),
                                            ("llama-2-7b", "h100-sxm-80gb")])
def test_conforms(workload, device, model, hardware):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device(hardware)) == []
