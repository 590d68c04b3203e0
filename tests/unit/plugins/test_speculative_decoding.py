"""Speculative decoding: expected tokens per step, a (k+1)-token verification pass, the draft's cost."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.roofline import decode_at, estimate
from llmeff.techniques.builtin.speculative_decoding import PLUGIN, SpeculativeParams
from llmeff.techniques.checks import check_technique
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


class _WithSettings:
    """The plugin with a chosen param_space, so the conformance check covers other drafters."""

    def __init__(self, plugin, *params):
        self._plugin, self._params = plugin, params

    def __getattr__(self, name):
        return getattr(self._plugin, name)

    def param_space(self, workload, hardware):
        return self._params


@pytest.mark.parametrize("a, k, expected", [
    (0.8, 4, (1 - 0.8**5) / (1 - 0.8)),  # 3.3616: Leviathan et al. (2211.17192), capped geometric series
    (0.6, 2, 1 + 0.6 + 0.36),
    (0.0, 5, 1.0),  # nothing accepted: the target's own token only
])
def test_tokens_per_step(workload, device, a, k, expected):
    new = PLUGIN.apply(workload("llama-2-7b"), device("a100-sxm4-80gb"),
                       SpeculativeParams(draft_len=k, acceptance_rate=a, drafter="none"))
    assert new.decode_tokens_per_step == pytest.approx(expected)


def test_verification_pass_reads_weights_and_kv_once(workload, device):
    n = 5  # k = 4 drafted + 1
    base = workload("llama-2-7b", batch=1, prompt=1000, output=64)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), SpeculativeParams(draft_len=4, acceptance_rate=0.7,
                                                                         drafter="none"))
    old, row = _row(base, "decode", "gate_proj"), _row(new, "decode", "gate_proj")
    assert (row.flops_base, row.activation_bytes_base, row.weight_bytes) == (
        old.flops_base * n, old.activation_bytes_base * n, old.weight_bytes)
    qk, old_qk = _row(new, "decode", "qk_matmul"), _row(base, "decode", "qk_matmul")
    # 5 queries over c keys, the later ones also over the 1..4 drafted before them; K read once (+4 new keys)
    assert qk.flops_per_context == old_qk.flops_per_context * n
    assert qk.flops_base == old_qk.flops_per_context * (0 + 1 + 2 + 3 + 4)
    assert (qk.kv_bytes_per_context, qk.kv_bytes_base) == (old_qk.kv_bytes_per_context,
                                                           old_qk.kv_bytes_per_context * 4)
    assert _row(new, "decode", "k_proj").kv_bytes_base == 5 * 4096 * 2  # five new keys written
    assert new.decode.tokens == n and new.memory.kv_cache_bytes == base.memory.kv_cache_bytes + 4 * 524288
    # batch-1 decode is bound by the weights: a 5-token pass costs about one step, the tokens per step win
    a100 = device("a100-sxm4-80gb")
    assert decode_at(new, a100, 1001).roofline_time_s / decode_at(base, a100, 1001).roofline_time_s < 1.02
    assert estimate(new, a100).tpot_s < estimate(base, a100).tpot_s / 2


def test_moe_verification_touches_more_experts(workload, device):
    base = workload("mixtral-8x7b", batch=1)
    new = PLUGIN.apply(base, device("h100-sxm-80gb"), SpeculativeParams(draft_len=4, acceptance_rate=0.7,
                                                                        drafter="none"))
    # uniform top-2 of 8: 1 token reaches 2 experts, 5 tokens 8 (1 - 0.75^5)
    assert _row(new, "decode", "expert_up").weight_bytes == pytest.approx(
        _row(base, "decode", "expert_up").weight_bytes * (1 - 0.75**5) / (1 - 0.75))


def test_draft_model_costs_k_scaled_steps(workload, device):
    k, phi = 3, 0.1
    base = workload("llama-2-70b", batch=1, prompt=1000, output=64)
    free = PLUGIN.apply(base, device("h100-sxm-80gb"), SpeculativeParams(draft_len=k, acceptance_rate=0.8,
                                                                         drafter="none"))
    drafted = PLUGIN.apply(base, device("h100-sxm-80gb"), SpeculativeParams(
        draft_len=k, acceptance_rate=0.8, draft_cost_fraction=phi))
    draft = _row(drafted, "decode", "draft_gate_proj")
    assert (draft.layers, draft.weight_bytes) == (80 * k, _row(base, "decode", "gate_proj").weight_bytes * phi)
    h100 = device("h100-sxm-80gb")
    extra = decode_at(drafted, h100, 1001).roofline_time_s - decode_at(free, h100, 1001).roofline_time_s
    assert extra == pytest.approx(k * phi * decode_at(base, h100, 1001).roofline_time_s)
    assert drafted.memory.weight_bytes == pytest.approx(base.memory.weight_bytes * (1 + phi))


def test_medusa_heads(workload, device):
    k, n = 4, 64
    base = workload("llama-2-7b", batch=1)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), SpeculativeParams(
        draft_len=k, drafter="heads", verify_tokens=n, mean_accepted=3.0))
    assert new.decode_tokens_per_step == 3.0
    lm = _row(new, "decode", "draft_head_lm")  # each head's own 4096 x 32000 LM head, on all 64 positions
    assert (lm.layers, lm.flops_base, lm.weight_bytes) == (k, 2 * n * 4096 * 32000, 4096 * 32000 * 2)
    block = _row(new, "decode", "draft_head_resblock")
    assert block.weight_bytes == (4096 * 4096 + 4096) * 2
    assert new.memory.weight_bytes == base.memory.weight_bytes + k * (4096 * 4096 + 4096 + 4096 * 32000) * 2
    assert _row(new, "prefill", "draft_head_lm").flops_base == 2 * 4096 * 32000  # last prompt position


def test_invalid_parameters_name_the_field():
    with pytest.raises(InvalidInputError, match=r"field 'acceptance_rate': must be in \[0, 1\), got 1.5"):
        SpeculativeParams(draft_len=4, acceptance_rate=1.5, drafter="none")
    with pytest.raises(InvalidInputError, match="field 'acceptance_rate': required"):
        SpeculativeParams(draft_len=4, drafter="none")
    with pytest.raises(InvalidInputError, match="field 'draft_cost_fraction': required"):
        SpeculativeParams(draft_len=4, acceptance_rate=0.5)
    with pytest.raises(InvalidInputError, match="field 'draft_cost_fraction': applies to drafter 'model' only"):
        SpeculativeParams(draft_len=4, acceptance_rate=0.5, drafter="heads", draft_cost_fraction=0.1)
    with pytest.raises(InvalidInputError, match=r"field 'mean_accepted': must be in \[1.0, 5.0\]"):
        SpeculativeParams(draft_len=4, mean_accepted=6.0, drafter="none")
    with pytest.raises(InvalidInputError, match="field 'draft_len'"):
        SpeculativeParams.parse({"draft_len": "0", "acceptance_rate": "0.5", "drafter": "none"})


def test_refusals_say_why(workload, device, kb):
    a100 = device("a100-sxm4-80gb")
    params = SpeculativeParams(draft_len=2, acceptance_rate=0.5, drafter="none")
    once = PLUGIN.apply(workload("llama-2-7b"), a100, params)
    verdict = PLUGIN.applicability(once, a100, params)
    assert not verdict.ok and "already yields 1.75 tokens per step" in verdict.reason
    mamba = build_workload(kb.model("mamba-2.8b").architecture(), WorkloadRequest())
    assert "recurrent state" in PLUGIN.applicability(mamba, a100, params).reason


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b"])
def test_conformance(workload, device, model):
    a100 = device("a100-sxm4-80gb")
    base = workload(model, batch=2)
    assert check_technique(PLUGIN, base, a100) == []
    others = _WithSettings(PLUGIN, SpeculativeParams(draft_len=5, acceptance_rate=0.75, draft_cost_fraction=0.05),
                           SpeculativeParams(draft_len=3, acceptance_rate=0.6, drafter="none", verify_tokens=10))
    assert check_technique(others, base, a100) == []
