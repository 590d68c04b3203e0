"""Shadow outlier execution: int8 GEMMs on the NPU, a fraction f of channels in float on the CPU."""

from __future__ import annotations

import dataclasses

import pytest

from llmeff.errors import InvalidInputError
from llmeff.hardware.specs import Processor
from llmeff.roofline import estimate
from llmeff.techniques.builtin.npu_outlier_offload import PLUGIN, NpuOutlierParams
from llmeff.techniques.checks import check_technique

# Test inputs, not data: CPU peaks for the Snapdragon 8 Gen 3, whose shipped entry has none yet (fp16 is
# needed only because the analysis runs the float operators on the CPU in the workload's fp16)
CPU_FP32, CPU_FP16 = 250e9, 500e9
# Qwen1.5-1.8B (config.json): hidden 2048, 16 heads of 128 with q/k/v biases, MLP 5504, 24 layers; fp16
H, MLP, LAYERS = 2048, 5504, 24


@pytest.fixture(scope="module")
def phone(registry):
    shipped = registry[1]["snapdragon-8-gen-3"]
    cpu = Processor("cpu", {"fp32": CPU_FP32, "fp16": CPU_FP16})
    return dataclasses.replace(shipped, extra_processors={"cpu": cpu})


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_q_proj_splits_into_npu_int8_and_cpu_fp32_outliers(workload, phone):
    base = workload("qwen1.5-1.8b", prompt=1024)
    npu = PLUGIN.apply(base, phone, NpuOutlierParams(outlier_fraction=0.001))
    q, outliers = _row(npu, "prefill", "q_proj"), _row(npu, "prefill", "q_proj_outliers")
    assert (q.resource, q.dtype, q.flops_base) == ("npu", "int8", 2 * 1024 * H * H)
    assert q.weight_bytes == H * H + H  # int8 weights and bias, one byte each
    assert (outliers.resource, outliers.dtype) == ("cpu", "fp32")
    # f of the input channels through the whole output, plus the merge's additions
    assert outliers.flops_base == pytest.approx(0.001 * 2 * 1024 * H * H + 1024 * H)
    assert outliers.weight_bytes == pytest.approx(0.001 * (H * H + H) * 2)  # those channels' fp16 weight rows
    # scan the fp32 input for outliers, read the NPU result and write the corrected sum
    assert outliers.activation_bytes_base == 1024 * H * 4 + 2 * 1024 * H * 4
    assert _row(npu, "prefill", "lm_head").resource == "compute"
    assert npu.decode.table.names == base.decode.table.names  # mllm-NPU accelerates the prefill


def test_npu_row_is_timed_on_the_npu_int8_peak(workload, phone):
    npu = PLUGIN.apply(workload("qwen1.5-1.8b", prompt=1024), phone, NpuOutlierParams())
    ops = {op.name: op for op in estimate(npu, phone, processor="cpu").prefill.operators}
    up = _row(npu, "prefill", "up_proj")
    # 73 TOPS int8 (arXiv 2407.05858 Table 2) against the shared 76.8 GB/s
    expected = max(up.flops_base / 73e12, (up.weight_bytes + up.activation_bytes_base) / 76.8e9) * LAYERS
    assert ops["up_proj"].roofline_time_s == pytest.approx(expected)
    cpu = _row(npu, "prefill", "up_proj_outliers")
    assert ops["up_proj_outliers"].roofline_time_s == pytest.approx(
        max(cpu.flops_base / CPU_FP32, (cpu.weight_bytes + cpu.activation_bytes_base) / 76.8e9) * LAYERS)


def test_decode_option_and_the_int8_copy(workload, phone):
    base = workload("qwen1.5-1.8b")
    both = PLUGIN.apply(base, phone, NpuOutlierParams(decode=True))
    assert _row(both, "decode", "down_proj").resource == "npu"
    layer = 3 * (H * H + H) + H * H + 3 * H * MLP  # q/k/v with biases, o, gate/up/down
    assert both.memory.weight_bytes == pytest.approx(base.memory.weight_bytes + LAYERS * layer)


def test_needs_an_npu_int8_peak_and_an_outlier_peak(workload, device, phone):
    import dataclasses

    shipped = device("snapdragon-8-gen-3")  # its data now has a (derived) CPU peak
    assert PLUGIN.applicability(workload("qwen1.5-1.8b"), shipped, NpuOutlierParams()).ok
    no_cpu = dataclasses.replace(shipped, extra_processors={})
    reason = PLUGIN.applicability(workload("qwen1.5-1.8b"), no_cpu, NpuOutlierParams()).reason
    assert reason == ("the outlier channels need a published fp32 peak on the cpu: hardware 'snapdragon-8-gen-3' "
                      "has no processor 'cpu' (it has: gpu, npu)")
    assert PLUGIN.applicability(workload(), device("a100-sxm4-80gb"), NpuOutlierParams()).reason.startswith(
        "the int8 GEMMs need a published int8 peak on the npu")
    assert "gpu has no published fp32 peak" in PLUGIN.applicability(
        workload("qwen1.5-1.8b"), phone, NpuOutlierParams(outlier_processor="gpu")).reason


def test_invalid_settings_name_the_parameter():
    with pytest.raises(InvalidInputError, match="field 'outlier_fraction': must be above 0 and below 1, got 0"):
        NpuOutlierParams(outlier_fraction=0.0)
    with pytest.raises(InvalidInputError, match="field 'outlier_processor'"):
        NpuOutlierParams(outlier_processor="dsp")
    with pytest.raises(InvalidInputError, match="field 'outlier_dtype'"):
        NpuOutlierParams(outlier_dtype="int8")


@pytest.mark.parametrize("model", ["qwen1.5-1.8b", "mixtral-8x7b", "deepseek-v2-lite"])
def test_conforms(workload, phone, model):
    assert check_technique(PLUGIN, workload(model, prompt=256, output=16), phone) == []
