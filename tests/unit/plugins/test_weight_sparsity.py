"""Weight sparsity: 2:4 halves the GEMM FLOPs and stores 9/16 of fp16 bytes; unstructured depends on the kernel."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError
from llmeff.roofline import estimate
from llmeff.techniques.builtin.weight_sparsity import PLUGIN, WeightSparsityParams
from llmeff.techniques.checks import check_technique

H, W, L = 4096, 11008, 32  # Llama-2-7B config.json
LAYER_GEMM = 4 * H * H + 3 * H * W


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def _layer_gemm_bytes(w):
    t = w.decode.table
    return sum(b * n for b, n, k, name in zip(t.weight_bytes, t.layers, t.kinds, t.names)
               if k == "gemm" and name != "lm_head")


def test_2_4_on_sparse_tensor_cores(workload, device):
    base = workload("llama-2-7b", batch=1, prompt=1024, output=8)
    h100 = device("h100-sxm-80gb")
    sparse = PLUGIN.apply(base, h100, WeightSparsityParams())
    # per 4 fp16 weights: 2 values of 16 bits and 2 two-bit positions = 36 of 64 bits (the KB's 9/16)
    assert _layer_gemm_bytes(sparse) == pytest.approx(L * LAYER_GEMM * 2 * 36 / 64)
    assert _row(sparse, "decode", "up_proj").flops_base == _row(base, "decode", "up_proj").flops_base / 2
    assert _row(sparse, "decode", "lm_head").weight_bytes == _row(base, "decode", "lm_head").weight_bytes
    assert sparse.memory.weight_bytes == pytest.approx(base.memory.weight_bytes - L * LAYER_GEMM * 2 * (1 - 9 / 16))
    # compute-bound prefill GEMMs: half the FLOPs at the dense peak, half the time
    before = {op.name: op for op in estimate(base, h100).prefill.operators}
    after = {op.name: op for op in estimate(sparse, h100).prefill.operators}
    assert after["gate_proj"].roofline_time_s == pytest.approx(before["gate_proj"].roofline_time_s / 2)
    assert sparse.weight_dtype == "fp16 2:4"


def test_2_4_int8_weights_keep_5_of_8_bytes(workload, device):
    base = workload("llama-2-7b", weight_dtype="int8")
    sparse = PLUGIN.apply(base, device("h100-sxm-80gb"), WeightSparsityParams())
    # 2 int8 values and 2 two-bit positions per 4 weights: 20 of 32 bits
    assert _row(sparse, "decode", "q_proj").weight_bytes == pytest.approx(H * H * 20 / 32)


def test_2_4_needs_sparse_tensor_cores(workload, device):
    verdict = PLUGIN.applicability(workload(), device("v100-sxm2-32gb"), WeightSparsityParams())
    assert not verdict.ok and "sparse-2-4" in verdict.reason
    assert PLUGIN.applicability(workload(), device("v100-sxm2-32gb"),
                                WeightSparsityParams(pattern="unstructured", sparsity=0.7)).ok


def test_unstructured_kernels_save_different_things(workload, device):
    base = workload("llama-2-7b", batch=1, prompt=128, output=8)
    v100 = device("v100-sxm2-32gb")
    # 70% sparse in CSR: 0.3 of the values with a 16-bit column index each, a 32-bit offset per output row
    csr = 0.3 * (16 + 16) / 16 + 32 / (H * 16)
    sparse = PLUGIN.apply(base, v100, WeightSparsityParams(pattern="unstructured", sparsity=0.7))
    q, q0 = _row(sparse, "decode", "q_proj"), _row(base, "decode", "q_proj")
    assert q.weight_bytes == pytest.approx(H * H * 2 * csr) and q.flops_base == pytest.approx(q0.flops_base * 0.3)
    loaded = PLUGIN.apply(base, v100, WeightSparsityParams(pattern="unstructured", sparsity=0.7, kernel="load-sparse"))
    q = _row(loaded, "decode", "q_proj")
    assert q.weight_bytes == pytest.approx(H * H * 2 * csr) and q.flops_base == q0.flops_base
    assert loaded.memory.weight_bytes == pytest.approx(sparse.memory.weight_bytes)
    # no sparse kernel: memory holds CSR, but each pass decompresses (read CSR, write dense) and reads dense
    dense = PLUGIN.apply(base, v100, WeightSparsityParams(pattern="unstructured", sparsity=0.7, kernel="dense"))
    assert _row(dense, "decode", "q_proj").weight_bytes == pytest.approx(H * H * 2 * (csr + 2))
    assert dense.memory.weight_bytes == pytest.approx(sparse.memory.weight_bytes)
    kept = PLUGIN.apply(base, v100, WeightSparsityParams(pattern="unstructured", kernel="dense", stored_sparse=False))
    assert (kept.decode.table.weight_bytes == base.decode.table.weight_bytes).all()
    assert kept.memory.weight_bytes == base.memory.weight_bytes


def test_half_sparse_fp16_csr_saves_no_memory(workload, device):
    # 50% of 16-bit values with 16-bit indices is as large as the dense matrix (first principles)
    base = workload("llama-2-7b")
    csr = PLUGIN.apply(base, device("a100-sxm4-80gb"), WeightSparsityParams(pattern="unstructured", sparsity=0.5))
    assert csr.memory.weight_bytes >= base.memory.weight_bytes


def test_invalid_settings_name_the_parameter(workload, device):
    with pytest.raises(InvalidInputError, match="field 'sparsity': 2:4 removes exactly half the weights, got 0.6"):
        WeightSparsityParams(sparsity=0.6)
    with pytest.raises(InvalidInputError, match="field 'kernel'"):
        WeightSparsityParams(pattern="unstructured", kernel="magic")
    with pytest.raises(InvalidInputError, match="field 'sparsity'"):
        WeightSparsityParams.parse({"pattern": "unstructured", "sparsity": "1.2"})
    verdict = PLUGIN.applicability(workload(), device("h100-sxm-80gb"), WeightSparsityParams())
    twice = PLUGIN.apply(workload(), device("h100-sxm-80gb"), WeightSparsityParams())
    assert verdict.ok and not PLUGIN.applicability(twice, device("h100-sxm-80gb"), WeightSparsityParams()).ok


@pytest.mark.parametrize("model", ["llama-2-7b", "llama-2-70b", "mixtral-8x7b", "deepseek-v2-lite"])
def test_conformance(workload, device, model):
    assert check_technique(PLUGIN, workload(model, batch=2, prompt=256, output=16), device("h100-sxm-80gb")) == []
