"""Continuous batching: each request leaves after its own output; the decode step itself is unchanged."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import estimate
from llmeff.techniques.builtin.continuous_batching import PLUGIN, ContinuousBatchingParams
from llmeff.techniques.checks import check_technique


def test_requests_average_the_mix_not_the_longest(workload, device):
    a100 = device("a100-sxm4-80gb")
    base = workload("llama-2-7b", batch=8, prompt=512, output=256)
    cb = PLUGIN.apply(base, a100, ContinuousBatchingParams(mean_to_max_output=0.5))
    assert cb.output_tokens == 128
    assert cb.decode.table is base.decode.table and cb.batch == 8  # slots refilled: the batch stays at 8
    assert cb.memory == base.memory  # slots still reserve for the longest output
    before, after = estimate(base, a100), estimate(cb, a100)
    assert after.ttft_s == before.ttft_s
    # 127 decode steps of the mean request instead of the longest's 255 (the first token comes from prefill)
    assert (after.e2e_latency_s - after.ttft_s) / after.tpot_s == pytest.approx(127)
    assert "50.0% of its slot-steps produce nothing" in cb.applied[-1].changes[0]


def test_geometric_lengths_give_one_over_the_harmonic_number(workload, device):
    # the longest of 4 memoryless (geometric) lengths averages H_4 = 25/12 times their mean
    space = PLUGIN.param_space(workload("llama-2-7b", batch=4), device("h100-sxm-80gb"))
    ratios = [p.mean_to_max_output for p in space]
    assert ratios == [0.5, 0.48]


def test_invalid_ratio_names_the_field():
    with pytest.raises(InvalidInputError, match=r"field 'mean_to_max_output': must be in \(0, 1\]"):
        ContinuousBatchingParams(mean_to_max_output=1.5)
    with pytest.raises(InvalidInputError, match="field 'mean_to_max_output'"):
        ContinuousBatchingParams.parse({"mean_to_max_output": "0"})


def test_refuses_a_batch_of_one_and_a_mix_without_spread(workload, device):
    h100 = device("h100-sxm-80gb")
    verdict = PLUGIN.applicability(workload("llama-2-7b", batch=1), h100, ContinuousBatchingParams())
    assert not verdict.ok and "waits for no other request" in verdict.reason
    same = ContinuousBatchingParams(mean_to_max_output=1.0)
    assert "wastes no steps" in PLUGIN.applicability(workload("llama-2-7b", batch=4), h100, same).reason
    with pytest.raises(TechniqueNotApplicableError):
        PLUGIN.apply(workload("llama-2-7b", batch=1), h100, ContinuousBatchingParams())


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=6, prompt=300, output=100), device("a100-sxm4-80gb")) == []
    assert check_technique(PLUGIN, workload(model, batch=1), device("a100-sxm4-80gb")) == []
