"""Pipeline parallelism: the critical path of one batch, GPipe's bubble, per-device memory."""

from __future__ import annotations

import numpy as np
import pytest

from llmeff.errors import InvalidInputError
from llmeff.roofline import estimate
from llmeff.techniques.builtin.pipeline_parallel import PLUGIN, PipelineParallelParams
from llmeff.techniques.builtin.tensor_parallel import PLUGIN as TENSOR_PARALLEL
from llmeff.techniques.builtin.tensor_parallel import TensorParallelParams
from llmeff.techniques.checks import check_technique

# Llama-2-7B (config.json): hidden 4096, MLP 11008, vocab 32000, 32 layers
H, MLP, VOCAB, LAYERS = 4096, 11008, 32000, 32


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_one_micro_batch_gets_no_speedup(workload, device):
    a100 = device("a100-sxm4-80gb")  # NVLink 300 GB/s one way
    base = workload("llama-2-7b", prompt=512)
    pp = PLUGIN.apply(base, a100, PipelineParallelParams(stages=4, micro_batches=1))
    table = pp.prefill.table
    assert table.names[:-1] == base.prefill.table.names and (table.layers[:-1] == base.prefill.table.layers).all()
    send = _row(pp, "prefill", "pp_send")
    assert (send.layers, send.activation_bytes_base, send.kind) == (3, 512 * H * 2, "communication")
    # the whole model for the one batch, plus three sends of its hidden states
    extra = estimate(pp, a100).roofline_ttft_s - estimate(base, a100).roofline_ttft_s
    assert extra == pytest.approx(3 * 512 * H * 2 / 300e9)


def test_gpipe_bubble_with_micro_batches(workload, device):
    base = workload("llama-2-7b", batch=4, prompt=1024)
    pp = PLUGIN.apply(base, device("a100-sxm4-80gb"), PipelineParallelParams(stages=4, micro_batches=4))
    q = _row(pp, "prefill", "q_proj")
    # path: the whole model for one micro-batch plus 3 slots of the 8-layer stage = 32 (m+p-1)/p layers
    assert q.layers == 32 + 3 * 8 == LAYERS * 7 / 4
    assert q.flops_base == 2 * 1024 * H * H  # one micro-batch of 1 sequence
    assert q.weight_bytes == H * H * 2  # each micro-batch reads the stage's weights again
    # a device works 8 layers x 4 micro-batches of the 56 layer slots: 1 - (p-1)/(m+p-1) = 4/7
    assert 8 * 4 / q.layers == pytest.approx(1 - 3 / 7)
    assert "bubble fraction (p-1)/(m+p-1) = 0.429" in pp.applied[-1].changes[1]


def test_compute_bound_prefill_speeds_up_by_mp_over_m_plus_p_minus_1(workload, device):
    # batch 8 x 2048 tokens keeps the A100 compute-bound: each slot is 1/m of the layer, (m+p-1)/p layers deep
    a100 = device("a100-sxm4-80gb")
    base = workload("llama-2-7b", batch=8, prompt=2048, output=2)
    pp = PLUGIN.apply(base, a100, PipelineParallelParams(stages=4, micro_batches=8))
    ratio = estimate(pp, a100).roofline_ttft_s / estimate(base, a100).roofline_ttft_s
    assert ratio == pytest.approx((8 + 4 - 1) / (8 * 4), rel=0.03)


def test_memory_of_the_fullest_device(workload, device):
    base = workload("llama-2-7b")
    pp = PLUGIN.apply(base, device("a100-sxm4-80gb"), PipelineParallelParams(stages=2))
    layer = 4 * H * H + 3 * H * MLP + 2 * H  # GEMMs and two norm scales
    # 16 layers, and the last stage's LM head with the final norm (just over the first stage's embedding)
    assert pp.memory.weight_bytes == pytest.approx((16 * layer + VOCAB * H + H) * 2)
    assert pp.memory.kv_cache_bytes == base.memory.kv_cache_bytes / 2
    assert pp.devices == 2


def test_after_tensor_parallel_devices_multiply(workload, device):
    h100 = device("h100-sxm-80gb")
    tp = TENSOR_PARALLEL.apply(workload("llama-2-70b", batch=4), h100, TensorParallelParams(degree=8))
    both = PLUGIN.apply(tp, h100, PipelineParallelParams(stages=4, micro_batches=2))
    assert both.devices == 32
    allreduce = _row(both, "prefill", "tp_allreduce_mlp")
    assert allreduce.layers == 80 + 1 * 20 and allreduce.activation_bytes_base == pytest.approx(
        _row(tp, "prefill", "tp_allreduce_mlp").activation_bytes_base / 2)
    assert not TENSOR_PARALLEL.applicability(both, h100, TensorParallelParams(degree=2)).ok


def test_invalid_settings_name_the_parameter(workload, device, pcie_unmeasured):
    with pytest.raises(InvalidInputError, match="field 'stages': must be an integer of at least 2, got 1"):
        PipelineParallelParams(stages=1)
    with pytest.raises(InvalidInputError, match="field 'micro_batches'"):
        PipelineParallelParams(micro_batches=0)
    a100 = device("a100-sxm4-80gb")
    assert PLUGIN.applicability(workload(batch=4), a100, PipelineParallelParams(micro_batches=3)).reason == \
        "micro_batches 3 does not divide the batch of 4"
    assert PLUGIN.applicability(workload(), a100, PipelineParallelParams(stages=40)).reason == \
        "stages 40 exceed the model's 32 layers"
    assert PLUGIN.applicability(workload(), pcie_unmeasured, PipelineParallelParams()).reason == \
        "hardware 'rtx-4090-24gb' lists its host-link (pcie4-x16) without a bandwidth"


def test_cards_without_a_gpu_link_send_over_pcie(workload, device):
    card = device("rtx-4090-24gb")  # no NVLink; PCIe 4.0 x16, 64 GB/s both ways = 32 GB/s each way
    assert card.interconnect is None
    base = workload("llama-2-7b", prompt=512)
    pp = PLUGIN.apply(base, card, PipelineParallelParams(stages=2, micro_batches=1))
    send = _row(pp, "prefill", "pp_send")
    assert (send.layers, send.activation_bytes_base) == (1, 512 * H * 2)
    assert pp.prefill.table.resources[-1] == "host-link"
    extra = estimate(pp, card).roofline_ttft_s - estimate(base, card).roofline_ttft_s
    assert extra == pytest.approx(512 * H * 2 / 32e9)
    assert "no GPU-to-GPU link listed: the sends cross PCIe" in pp.applied[-1].changes[2]


@pytest.mark.parametrize("model,hardware", [("llama-2-7b", "a100-sxm4-80gb"), ("mixtral-8x7b", "h100-sxm-80gb"),
                                            ("deepseek-v2-lite", "h100-sxm-80gb"), ("gemma-2-9b", "h100-sxm-80gb")])
def test_conforms(workload, device, model, hardware):
    assert check_technique(PLUGIN, workload(model, batch=4, prompt=256, output=16), device(hardware)) == []


def test_micro_batches_reach_fewer_experts(workload, device):
    # Mixtral (8 experts, top-2): a decode step of 4 sequences reaches 8(1 - (3/4)^4) experts, one of 1 reaches 2
    base = workload("mixtral-8x7b", batch=4)
    pp = PLUGIN.apply(base, device("h100-sxm-80gb"), PipelineParallelParams(stages=2, micro_batches=4))
    ratio = _row(pp, "decode", "expert_up").weight_bytes / _row(base, "decode", "expert_up").weight_bytes
    assert ratio == pytest.approx(2 / (8 * (1 - 0.75 ** 4)))
    assert np.isclose(_row(pp, "decode", "embedding").weight_bytes, _row(base, "decode", "embedding").weight_bytes / 4)
