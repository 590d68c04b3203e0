"""weight-only-quant's ``bits_per_weight`` override: a block format's published average replaces bits + scales."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin.weight_only_quant import PLUGIN, WeightOnlyParams
from llmeff.techniques.pipeline import parse_technique
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest

# Llama-2-7B (config.json shapes): per layer q, k, v, o (4096 x 4096) and gate, up, down (4096 x 11008); 32 layers;
# the untied LM head is 32000 x 4096
LAYER_GEMM = 4 * 4096 * 4096 + 3 * 4096 * 11008
LM_HEAD = 32000 * 4096
Q4_K_M = 4.8944  # llama.cpp tools/quantize/README.md, Llama-3.1-8B table, Q4_K_M bits/weight


@pytest.fixture(scope="module")
def llama_and_h100(kb_path):
    from llmeff.kb.api import open_kb

    with open_kb(kb_path) as kb:
        arch, h100 = kb.model("llama-2-7b").architecture(), kb.hardware("h100-sxm-80gb")
    base = build_workload(arch, WorkloadRequest(batch=1, prompt_tokens=16, output_tokens=2), model="llama-2-7b")
    return base, h100


def _gemm_weight_bytes(workload, *, lm_head: bool) -> float:
    table = workload.decode.table
    return sum(b * n for b, n, kind, name in zip(table.weight_bytes, table.layers, table.kinds, table.names)
               if kind == "gemm" and (lm_head or name != "lm_head"))


def test_the_override_sets_the_bytes_of_every_gemm_including_the_lm_head(llama_and_h100):
    base, h100 = llama_and_h100
    quantized = PLUGIN.apply(base, h100, WeightOnlyParams(bits=4, bits_per_weight=Q4_K_M, lm_head=True))
    gemm_weights = 32 * LAYER_GEMM + LM_HEAD
    assert _gemm_weight_bytes(base, lm_head=True) == gemm_weights * 2
    assert _gemm_weight_bytes(quantized, lm_head=True) == pytest.approx(gemm_weights * Q4_K_M / 8)
    # the footprint loses (16 - 4.8944) bits on each GEMM weight; the embedding table keeps its 16 bits
    assert quantized.memory.weight_bytes == pytest.approx(
        base.memory.weight_bytes - gemm_weights * (16 - Q4_K_M) / 8, rel=1e-9)
    assert quantized.weight_dtype == "4.8944 bpw"
    assert set(quantized.decode.table.dtypes) == {"fp16"}  # still computed in 16-bit
    assert "4.894 bits per weight" in quantized.applied[-1].changes[0]


def test_the_override_ignores_group_size_and_zero_point(llama_and_h100):
    base, h100 = llama_and_h100
    a = PLUGIN.apply(base, h100, WeightOnlyParams(bits_per_weight=Q4_K_M, group_size=64, zero_point=False))
    b = PLUGIN.apply(base, h100, WeightOnlyParams(bits_per_weight=Q4_K_M))
    assert _gemm_weight_bytes(a, lm_head=False) == _gemm_weight_bytes(b, lm_head=False) == pytest.approx(
        32 * LAYER_GEMM * Q4_K_M / 8)
    assert WeightOnlyParams(bits_per_weight=Q4_K_M).stored_bits_per_weight() == Q4_K_M
    assert WeightOnlyParams(bits=4, group_size=128).stored_bits_per_weight() == 4 + (16 + 4) / 128  # unchanged


def test_the_override_parses_from_a_technique_spec():
    plugin, params = parse_technique("weight-only-quant:bits=4,bits_per_weight=4.8944,lm_head=true")
    assert plugin is PLUGIN and params == WeightOnlyParams(bits=4, bits_per_weight=4.8944, lm_head=True)
    assert parse_technique("weight-only-quant:bits_per_weight=none")[1].bits_per_weight is None


@pytest.mark.parametrize("value", [0.0, -1.0, 16.0, 32.0])
def test_an_override_outside_0_to_16_bits_names_the_parameter(value):
    with pytest.raises(InvalidInputError, match="field 'bits_per_weight': must be above 0 and below 16 bits"):
        WeightOnlyParams(bits_per_weight=value)
