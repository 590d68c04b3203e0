"""Tensor parallelism: per-device terms divided by t, all-reduces on the interconnect, KV heads by head."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import estimate
from llmeff.techniques.builtin.tensor_parallel import PLUGIN, TensorParallelParams
from llmeff.techniques.checks import check_technique

# Llama-2-7B (config.json): hidden 4096, 32 heads of 128 (MHA), MLP 11008, vocab 32000, 32 layers
H, MLP, VOCAB, LAYERS = 4096, 11008, 32000, 32
LAYER_GEMMS = 4 * H * H + 3 * H * MLP
NORMS = LAYERS * 2 * H + H  # two RMSNorm scales per layer and the final one


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_llama_7b_over_two_devices(workload, device):
    base = workload("llama-2-7b", prompt=512)
    tp = PLUGIN.apply(base, device("a100-sxm4-80gb"), TensorParallelParams(degree=2))
    q, o = _row(tp, "prefill", "q_proj"), _row(tp, "prefill", "o_proj")
    assert q.weight_bytes == H * H * 2 / 2
    assert o.flops_base == 2 * 512 * H * H / 2
    # column-parallel q: the whole input is read, half the output written
    assert q.activation_bytes_base == 512 * H * 2 + 512 * H * 2 / 2
    # two ring all-reduces per layer of 512 x 4096 fp16 values: 2(t-1)/t = 1 of the message per device
    for name in ("tp_allreduce_attention", "tp_allreduce_mlp"):
        row = _row(tp, "prefill", name)
        assert (row.layers, row.activation_bytes_base, row.flops_base) == (LAYERS, 512 * H * 2, 0.0)
    assert _row(tp, "decode", "tp_allreduce_mlp").activation_bytes_base == 1 * H * 2
    assert tp.devices == 2
    # per device: embedding and norms replicated, layer GEMMs and LM head halved
    params = VOCAB * H + NORMS + (LAYERS * LAYER_GEMMS + VOCAB * H) / 2
    assert tp.memory.weight_bytes == pytest.approx(params * 2)
    assert tp.memory.kv_cache_bytes == base.memory.kv_cache_bytes / 2


def test_all_reduce_time_is_bytes_over_one_way_nvlink(workload, device):
    a100 = device("a100-sxm4-80gb")  # NVLink 600 GB/s total bidirectional: 300 GB/s one way
    tp = PLUGIN.apply(workload("llama-2-7b", prompt=512), a100, TensorParallelParams(degree=4))
    ops = {op.name: op for op in estimate(tp, a100).prefill.operators}
    message = 2 * 3 / 4 * 512 * H * 2
    assert ops["tp_allreduce_attention"].roofline_time_s == pytest.approx(LAYERS * message / 300e9)


def test_gqa_heads_fewer_than_devices_are_replicated(workload, device):
    # Llama-2-70B: 64 query heads, 8 KV heads of 128, hidden 8192; over 16 devices each keeps one KV head
    base = workload("llama-2-70b", batch=2, prompt=256)
    tp = PLUGIN.apply(base, device("h100-sxm-80gb"), TensorParallelParams(degree=16))
    assert _row(tp, "prefill", "k_proj").weight_bytes == 8192 * 128 * 2
    assert _row(tp, "prefill", "q_proj").weight_bytes == 8192 * 4 * 128 * 2  # 4 query heads per device
    assert tp.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes / 8)
    assert "each replicated 2x" in tp.applied[-1].changes[1]


def test_mla_latent_cache_is_replicated(workload, device):
    base = workload("deepseek-v2-lite")
    tp = PLUGIN.apply(base, device("h100-sxm-80gb"), TensorParallelParams(degree=2))
    assert tp.memory.kv_cache_bytes == base.memory.kv_cache_bytes
    assert _row(tp, "prefill", "kv_a_proj").weight_bytes == _row(base, "prefill", "kv_a_proj").weight_bytes


def test_degree_must_divide_the_heads_and_be_at_least_two(workload, device):
    a100 = device("a100-sxm4-80gb")
    verdict = PLUGIN.applicability(workload(), a100, TensorParallelParams(degree=3))
    assert verdict.reason == "degree 3 does not divide the 32 attention heads"
    with pytest.raises(TechniqueNotApplicableError, match="tensor-parallel cannot apply: degree 3 does not divide"):
        PLUGIN.apply(workload(), a100, TensorParallelParams(degree=3))
    with pytest.raises(InvalidInputError, match="field 'degree': must be an integer of at least 2, got 1"):
        TensorParallelParams(degree=1)
    with pytest.raises(InvalidInputError, match="field 'degree'"):
        TensorParallelParams.parse({"degree": "two"})


def test_refuses_without_an_interconnect(workload, device):
    verdict = PLUGIN.applicability(workload(), device("rtx-4090-24gb"), TensorParallelParams())
    assert verdict.reason == "hardware 'rtx-4090-24gb' lists no interconnect"


@pytest.mark.parametrize("model,hardware", [("llama-2-7b", "a100-sxm4-80gb"), ("llama-2-70b", "h100-sxm-80gb"),
                                            ("mixtral-8x7b", "h100-sxm-80gb"), ("deepseek-v2-lite", "h100-sxm-80gb"),
                                            ("gemma-2-9b", "rtx-4090-24gb")])
def test_conforms(workload, device, model, hardware):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device(hardware)) == []
