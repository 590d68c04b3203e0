"""Offloading: weights (and KV) streamed over the host link each pass; device memory shrinks."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import decode_at
from llmeff.techniques.builtin.offloading import PLUGIN, OffloadingParams
from llmeff.techniques.checks import check_technique

# Llama-2-7B (config.json): hidden 4096, MLP 11008, vocab 32000, 32 layers; fp16
H, MLP, VOCAB, LAYERS = 4096, 11008, 32000, 32
# what one decode step of one sequence reads: layer GEMMs, norm scales, LM head, one embedding row
DECODE_WEIGHTS = (LAYERS * (4 * H * H + 3 * H * MLP + 2 * H) + H + VOCAB * H + H) * 2
PCIE4_ONE_WAY = 32e9  # A100's PCIe Gen4 x16: 64 GB/s bidirectional


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_half_the_weights_cross_pcie_every_step(workload, device):
    a100 = device("a100-sxm4-80gb")
    base = workload("llama-2-7b")
    half = PLUGIN.apply(base, a100, OffloadingParams(weight_fraction=0.5))
    row = _row(half, "decode", "host_weights")
    assert (row.resource, row.weight_bytes) == ("host-link", pytest.approx(0.5 * DECODE_WEIGHTS))
    # overlapped (FlexGen): the step takes the longer resource, here the 6.6 GB over 32 GB/s
    assert decode_at(half, a100, 600).roofline_time_s == pytest.approx(0.5 * DECODE_WEIGHTS / PCIE4_ONE_WAY)
    serial = PLUGIN.apply(base, a100, OffloadingParams(weight_fraction=0.5, overlap=False))
    assert decode_at(serial, a100, 600).roofline_time_s == pytest.approx(
        decode_at(base, a100, 600).roofline_time_s + 0.5 * DECODE_WEIGHTS / PCIE4_ONE_WAY)
    # half the weights stay, plus two layers' streamed share as staging
    assert half.memory.weight_bytes == pytest.approx(base.memory.weight_bytes * (0.5 + 2 * 0.5 / LAYERS))


def test_offloaded_kv_is_read_every_step(workload, device):
    a100 = device("a100-sxm4-80gb")
    base = workload("llama-2-7b", batch=8, prompt=2000)
    kv = PLUGIN.apply(base, a100, OffloadingParams(weight_fraction=1.0, kv_fraction=1.0))
    table = kv.decode.table
    host = [table.row(i) for i, n in enumerate(table.names) if n == "host_kv"]
    device_rows = [r for r in base.decode.table.rows() if r.kv_bytes_at(1) > 0]
    assert sum(r.kv_bytes_at(2001) * r.layers for r in host) == sum(r.kv_bytes_at(2001) * r.layers
                                                                      for r in device_rows)
    # K and V of 2001 keys per layer per sequence, plus the new token's K and V written out
    assert sum(r.kv_bytes_at(2001) * r.layers for r in host) == 8 * LAYERS * 2 * H * 2 * (2001 + 1)
    assert kv.memory.kv_cache_bytes == pytest.approx(base.memory.kv_cache_bytes * 2 / LAYERS)


def test_least_fraction_that_fits(workload, device):
    h100 = device("h100-sxm-80gb")
    base = workload("llama-2-70b")  # 138 GB of fp16 weights on an 80 GB device
    fit = PLUGIN.apply(base, h100, OffloadingParams())
    assert fit.memory.total_bytes == pytest.approx(80e9)
    assert "(the least that fits)" in fit.applied[-1].changes[0]
    small = workload("llama-2-7b")
    reason = PLUGIN.applicability(small, h100, OffloadingParams()).reason
    assert reason.startswith("the footprint (") and "nothing needs offloading" in reason


def test_refusals_and_invalid_fractions(workload, pcie_unmeasured):
    reason = PLUGIN.applicability(workload(), pcie_unmeasured, OffloadingParams(weight_fraction=1.0)).reason
    assert reason == "hardware 'rtx-4090-24gb' lists its host-link (pcie4-x16) without a bandwidth"
    with pytest.raises(TechniqueNotApplicableError, match="offloading cannot apply: hardware 'rtx-4090-24gb'"):
        PLUGIN.apply(workload(), pcie_unmeasured, OffloadingParams(weight_fraction=1.0))
    with pytest.raises(InvalidInputError, match="field 'kv_fraction': must be between 0 and 1, got 1.5"):
        OffloadingParams(kv_fraction=1.5)
    with pytest.raises(InvalidInputError, match="field 'weight_fraction': weight_fraction and kv_fraction are both 0"):
        OffloadingParams(weight_fraction=0.0)


@pytest.mark.parametrize("model,hardware", [("llama-2-70b", "h100-sxm-80gb"), ("mixtral-8x7b", "a100-sxm4-80gb"),
                                            ("deepseek-v2-lite", "h100-sxm-80gb"), ("gemma-2-9b", "rtx-4090-24gb")])
def test_conforms(workload, device, model, hardware):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device(hardware)) == []
