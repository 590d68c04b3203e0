"""Kernel fusion: residual adds join the next norm, the MLP activation joins the GEMM epilogue."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.kernel_fusion import PLUGIN, KernelFusionParams
from llmeff.techniques.checks import check_technique

HIDDEN, MLP = 4096, 11008  # Llama-2-7B


def row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_llama_decode_rows(workload, device):
    b = 4
    base = workload("llama-2-7b", batch=b, prompt=64, output=8)
    fused = PLUGIN.apply(base, device("a100-sxm4-80gb"), KernelFusionParams())
    names = fused.decode.table.names
    assert "residual_add" not in names and "mlp_act" not in names
    norms = row(fused, "decode", "norms")
    # two add+norm kernels per layer: read branch and residual, write residual and normed output (fp16)
    assert norms.activation_bytes_base == 2 * 4 * b * HIDDEN * 2
    assert norms.flops_base == 2 * b * HIDDEN * (4 + 1)  # RMSNorm's 4 FLOPs per element plus the add
    # gate's output stays on chip; the up GEMM writes the activated product (SiLU x up: 6 FLOPs per element)
    assert row(fused, "decode", "gate_proj").activation_bytes_base == b * HIDDEN * 2
    assert row(fused, "decode", "up_proj").activation_bytes_base == b * HIDDEN * 2 + b * MLP * 2
    assert row(fused, "decode", "up_proj").flops_base == 2 * b * HIDDEN * MLP + 6 * b * MLP
    # two fewer kernels per layer
    assert fused.decode.table.layers.sum() == base.decode.table.layers.sum() - 2 * 32


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_flops_conserved_and_bytes_saved(workload, device, phase):
    base = workload("mixtral-8x7b", batch=2, prompt=128, output=8)
    fused = PLUGIN.apply(base, device("h100-sxm-80gb"), KernelFusionParams())
    t0, t1 = getattr(base, phase).table, getattr(fused, phase).table
    assert (t1.flops_base * t1.layers).sum() == pytest.approx((t0.flops_base * t0.layers).sum())
    saved = (t0.activation_bytes_base * t0.layers).sum() - (t1.activation_bytes_base * t1.layers).sum()
    tokens = 2 * (128 if phase == "prefill" else 1)
    # per layer: one read of each of 2 residual sums; gate/up round trip of the routed experts (2 per token)
    expected = 32 * (2 * tokens * HIDDEN * 2 + 4 * 2 * tokens * 14336 * 2)
    assert saved == pytest.approx(expected)
    assert "expert_act" not in t1.names


def test_without_epilogue_the_activation_stays(workload, device):
    fused = PLUGIN.apply(workload("llama-2-7b"), device("a100-sxm4-80gb"), KernelFusionParams(gemm_epilogue=False))
    assert "mlp_act" in fused.decode.table.names and "residual_add" not in fused.decode.table.names


def test_gemma_post_norms_pair_with_the_two_adds(workload, device):
    # Gemma-2: 4 norms per layer (pre and post), 2 residual adds: both adds fuse
    fused = PLUGIN.apply(workload("gemma-2-9b", prompt=64), device("h100-sxm-80gb"), KernelFusionParams())
    assert "residual_add" not in fused.decode.table.names


def test_invalid_params_and_refusal(workload, device):
    with pytest.raises(InvalidInputError, match="field 'add_norm': nothing to fuse"):
        KernelFusionParams(add_norm=False, gemm_epilogue=False)
    fused = PLUGIN.apply(workload(), device("a100-sxm4-80gb"), KernelFusionParams())
    verdict = PLUGIN.applicability(fused, device("a100-sxm4-80gb"), KernelFusionParams())
    assert not verdict.ok and "no element-wise rows left" in verdict.reason


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "gemma-2-9b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device("a100-sxm4-80gb")) == []
