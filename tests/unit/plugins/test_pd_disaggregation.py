"""PD disaggregation: the prompt's KV crosses the interconnect once; two devices; the larger footprint."""

from __future__ import annotations

import pytest

from llmeff.roofline import estimate
from llmeff.techniques.builtin.pd_disaggregation import PLUGIN, PdDisaggregationParams
from llmeff.techniques.builtin.tensor_parallel import PLUGIN as TENSOR_PARALLEL
from llmeff.techniques.builtin.tensor_parallel import TensorParallelParams
from llmeff.techniques.checks import check_technique


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_prompt_kv_crosses_nvlink_once(workload, device):
    a100 = device("a100-sxm4-80gb")  # NVLink 300 GB/s one way
    base = workload("llama-2-7b", batch=2, prompt=1000, output=64)
    pd = PLUGIN.apply(base, a100, PdDisaggregationParams())
    per_token = 32 * 2 * 4096 * 2  # Llama-2-7B: 32 layers, K and V of 32 x 128, fp16
    assert base.kv_bytes_per_token == per_token
    row = _row(pd, "prefill", "kv_transfer")
    assert (row.resource, row.kv_bytes_base) == ("interconnect", 2 * 1000 * per_token)
    assert estimate(pd, a100).roofline_ttft_s - estimate(base, a100).roofline_ttft_s == pytest.approx(
        2 * 1000 * per_token / 300e9)
    assert estimate(pd, a100).roofline_tpot_s == estimate(base, a100).roofline_tpot_s
    assert pd.devices == 2


def test_gqa_and_tensor_parallel_shrink_the_transfer(workload, device):
    h100 = device("h100-sxm-80gb")
    base = workload("llama-2-70b", batch=4, prompt=2048)
    per_token = 80 * 2 * 8 * 128 * 2  # Llama-2-70B: 80 layers, 8 KV heads of 128
    assert _row(PLUGIN.apply(base, h100, PdDisaggregationParams()), "prefill", "kv_transfer").kv_bytes_base == \
        4 * 2048 * per_token
    tp = TENSOR_PARALLEL.apply(base, h100, TensorParallelParams(degree=8))
    split = PLUGIN.apply(tp, h100, PdDisaggregationParams())
    assert _row(split, "prefill", "kv_transfer").kv_bytes_base == 4 * 2048 * per_token / 8  # one KV head each
    assert split.devices == 16


def test_memory_reports_the_larger_device(workload, device):
    a100 = device("a100-sxm4-80gb")
    long_output = workload("llama-2-7b", batch=8, prompt=256, output=3000)
    pd = PLUGIN.apply(long_output, a100, PdDisaggregationParams())
    # decode holds the KV of 3256 tokens; the prefill device only 256 tokens' worth
    assert pd.memory.kv_cache_bytes == long_output.memory.kv_cache_bytes
    assert "decode device's" in pd.assumptions[-1]
    long_prompt = workload("llama-2-7b", batch=1, prompt=4000, output=8)
    pd = PLUGIN.apply(long_prompt, a100, PdDisaggregationParams())
    # the unfused prefill's score matrix (32 heads x 4000^2 fp16, read and written) dwarfs a decode step's
    assert pd.memory.activation_bytes == 32 * 4000 * 4000 * 2 * 2
    assert "prefill device's" in pd.assumptions[-1]


def test_refuses_without_an_interconnect(workload, device):
    reason = PLUGIN.applicability(workload(), device("rtx-4090-24gb"), PdDisaggregationParams()).reason
    assert reason == "hardware 'rtx-4090-24gb' lists no interconnect"


@pytest.mark.parametrize("model,hardware", [("llama-2-70b", "h100-sxm-80gb"), ("mixtral-8x7b", "h100-sxm-80gb"),
                                            ("deepseek-v2-lite", "a100-sxm4-80gb"), ("gemma-2-9b", "rtx-4090-24gb")])
def test_conforms(workload, device, model, hardware):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device(hardware)) == []
