"""Early exit: per-layer rows scale by the executed fraction; KV depth follows each method."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.early_exit import PLUGIN, EarlyExitParams
from llmeff.techniques.checks import check_technique
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest

# Llama-2-7B per layer: q, k, v, o 4096 x 4096; gate, up, down 4096 x 11008; two RMSNorm scales
LAYER_PARAMS = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096
KV_TOKEN_LAYER = 2 * 4096 * 2  # K and V, fp16


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_calm_exits_keep_kv_projections_and_depth(workload, device):
    f = 0.4
    base = workload("llama-2-7b", batch=1, prompt=512, output=128)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), EarlyExitParams(layer_fraction=f))
    for name in ("q_proj", "o_proj", "gate_proj", "down_proj"):
        old, row = _row(base, "decode", name), _row(new, "decode", name)
        assert (row.flops_base, row.weight_bytes, row.layers) == pytest.approx((old.flops_base * f,
                                                                                old.weight_bytes * f, 32))
    for name in ("k_proj", "v_proj"):  # skipped layers still project the copied state to K and V
        assert _row(new, "decode", name) == _row(base, "decode", name)
    # of the two norms per layer, the attention-input one still runs in skipped layers
    assert _row(new, "decode", "norms").flops_base == pytest.approx(_row(base, "decode", "norms").flops_base
                                                                    * (f + (1 - f) / 2))
    assert _row(new, "decode", "qk_matmul").kv_bytes_per_context == pytest.approx(
        _row(base, "decode", "qk_matmul").kv_bytes_per_context * f)
    assert _row(new, "decode", "lm_head") == _row(base, "decode", "lm_head")
    assert new.memory == base.memory and new.prefill.table.flops_base.tolist() == base.prefill.table.flops_base.tolist()
    # a batch waits for its deepest token: weights are all read
    batched = PLUGIN.apply(workload("llama-2-7b", batch=8), device("a100-sxm4-80gb"), EarlyExitParams(layer_fraction=f))
    assert _row(batched, "decode", "gate_proj").weight_bytes == 4096 * 11008 * 2


def test_skipdecode_scales_everything_and_trims_generated_kv(workload, device):
    f, b, s, t = 0.5, 4, 1000, 200
    base = workload("llama-2-7b", batch=b, prompt=s, output=t)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), EarlyExitParams(mode="skip-decode", layer_fraction=f))
    assert _row(new, "decode", "k_proj").weight_bytes == 4096 * 4096 * 2 * f
    assert _row(new, "decode", "lm_head") == _row(base, "decode", "lm_head")
    # the prompt keeps full depth; generated tokens keep KV in half of the layers
    assert new.memory.kv_cache_bytes == pytest.approx(b * 32 * KV_TOKEN_LAYER * (s + f * t))


def test_mixture_of_depths(workload, device):
    b, c = 4, 0.125
    base = workload("llama-2-7b", batch=b, prompt=1024, output=64)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), EarlyExitParams(mode="depth-routing"))
    routed = 0.5  # every other of the 32 blocks: 16
    tokens, scores = 1 - routed + routed * c, 1 - routed + routed * c * c
    assert _row(new, "prefill", "up_proj").flops_base == pytest.approx(_row(base, "prefill", "up_proj").flops_base
                                                                       * tokens)
    assert _row(new, "prefill", "up_proj").weight_bytes == _row(base, "prefill", "up_proj").weight_bytes
    assert _row(new, "prefill", "softmax").flops_base == pytest.approx(_row(base, "prefill", "softmax").flops_base
                                                                       * scores)
    # a routed block's weights are read unless all 4 tokens skip it: 1 - 0.875^4
    assert _row(new, "decode", "up_proj").weight_bytes == pytest.approx(
        4096 * 11008 * 2 * (1 - routed + routed * (1 - 0.875**4)))
    assert _row(new, "decode", "qk_matmul").kv_bytes_per_context == pytest.approx(b * 4096 * 2 * scores)
    router = _row(new, "decode", "depth_router")
    assert (router.layers, router.flops_base, router.weight_bytes) == (16, 2 * b * 4096, 4096 * 2)
    assert new.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes * tokens)


def test_shortgpt_removal_dense_and_moe(workload, device):
    base = workload("llama-2-7b", batch=1, prompt=512, output=128)
    new = PLUGIN.apply(base, device("a100-sxm4-80gb"), EarlyExitParams(mode="remove-layers", removed_layers=8))
    assert new.memory.weight_bytes == pytest.approx(base.memory.weight_bytes - 8 * LAYER_PARAMS * 2)
    assert new.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes * 24 / 32)
    assert _row(new, "prefill", "gate_proj").flops_base == pytest.approx(_row(base, "prefill", "gate_proj").flops_base
                                                                         * 24 / 32)
    # Mixtral layer: attention (4096 x 4096 x 2 + 4096 x 1024 x 2), 8 experts of 3 x 4096 x 14336, router, norms
    mixtral_layer = 2 * 4096 * 4096 + 2 * 4096 * 1024 + 8 * 3 * 4096 * 14336 + 4096 * 8 + 2 * 4096
    moe = workload("mixtral-8x7b", batch=1)
    cut = PLUGIN.apply(moe, device("h100-sxm-80gb"), EarlyExitParams(mode="remove-layers", removed_layers=8))
    assert cut.memory.weight_bytes == pytest.approx(moe.memory.weight_bytes - 8 * mixtral_layer * 2)


def test_invalid_parameters_name_the_field():
    with pytest.raises(InvalidInputError, match="field 'layer_fraction': required: mode token-exit needs"):
        EarlyExitParams()
    with pytest.raises(InvalidInputError, match=r"field 'layer_fraction': must be in \(0.0, 1.0\], got 1.5"):
        EarlyExitParams(layer_fraction=1.5)
    with pytest.raises(InvalidInputError, match="field 'removed_layers': applies to mode remove-layers only"):
        EarlyExitParams(layer_fraction=0.5, removed_layers=3)
    with pytest.raises(InvalidInputError, match="field 'mode'"):
        EarlyExitParams.parse({"mode": "calm", "layer_fraction": "0.5"})


def test_refusals_say_why(workload, device, kb):
    a100 = device("a100-sxm4-80gb")
    verdict = PLUGIN.applicability(workload("llama-2-7b"), a100, EarlyExitParams(mode="remove-layers",
                                                                                  removed_layers=32))
    assert not verdict.ok and "cannot remove 32 of 32 layers" in verdict.reason
    mamba = build_workload(kb.model("mamba-2.8b").architecture(), WorkloadRequest())
    assert "recurrent state" in PLUGIN.applicability(mamba, a100, EarlyExitParams(layer_fraction=0.5)).reason
    assert PLUGIN.applicability(mamba, a100, EarlyExitParams(mode="remove-layers", removed_layers=4)).ok


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "gemma-2-9b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2), device("a100-sxm4-80gb")) == []
