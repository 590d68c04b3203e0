"""Hardware registry: datasheet figures, aliases, capabilities, ridge points.

Expected values are the vendors' datasheet numbers, written out here (dense = sparse / 2).
"""

from __future__ import annotations

import pytest

from llmeff.errors import UnknownIdError
from llmeff.hardware.capabilities import capabilities
from llmeff.hardware.specs import MissingPeakError


@pytest.fixture()
def kb(store_kb):
    """The knowledge base on each backend: these read queries run on SQLite and on PostgreSQL."""
    return store_kb


def test_h100_sxm_dense_peaks_are_half_the_sparse_datasheet_figures(kb):
    h100 = kb.hardware("h100-sxm-80gb")
    # NVIDIA H100 SXM table: FP16 1,979 TFLOPS and FP8 3,958 TFLOPS "with sparsity".
    assert h100.peak("fp16") == pytest.approx(1979e12 / 2)
    assert h100.peak("fp8") == pytest.approx(3958e12 / 2)
    assert h100.memory_bandwidth_bytes_per_s == pytest.approx(3.35e12)
    assert h100.memory_capacity_bytes == 80 * 10**9  # decimal GB, as printed


def test_missing_peak_is_an_error_not_a_substitute(kb):
    h100 = kb.hardware("h100-sxm-80gb")
    with pytest.raises(MissingPeakError, match="hardware 'h100-sxm-80gb' has no published int4 peak"):
        h100.peak("int4")  # Hopper has no INT4 tensor path


def test_ridge_point_is_peak_over_bandwidth(kb):
    a100 = kb.hardware("a100-sxm4-80gb")
    # 312 TFLOP/s FP16 dense / 2,039 GB/s = 153.0 FLOP/byte
    assert a100.ridge_point("fp16") == pytest.approx(312e12 / 2039e9)


def test_benchmark_table_names_resolve_through_aliases(kb):
    assert kb.hardware("A100 80GB").id == "a100-sxm4-80gb"
    assert kb.hardware("4090 24GB").id == "rtx-4090-24gb"
    assert kb.hardware("Snapdragon 8 Gen 3").id == "snapdragon-8-gen-3"


def test_unknown_hardware_suggests_ids(kb):
    with pytest.raises(UnknownIdError) as caught:
        kb.hardware("h100")
    message = str(caught.value)
    assert message.startswith("unknown hardware 'h100'. Did you mean: h100-")
    assert all(s.startswith("h100-") for s in caught.value.suggestions)


def test_capabilities_follow_published_fields(kb):
    assert "fp8-matmul" in capabilities(kb.hardware("h100-sxm-80gb"))
    assert "fp8-matmul" not in capabilities(kb.hardware("a100-sxm4-80gb"))
    assert "npu" in capabilities(kb.hardware("snapdragon-8-gen-3"))
    assert "multi-device" in capabilities(kb.hardware("a100-sxm4-80gb"))  # NVLink listed


def test_registry_has_every_kind_the_brief_names(kb):
    kinds = {s.kind for s in kb.hardware_list()}
    assert {"gpu", "cpu", "soc-gpu", "npu", "tpu"} <= kinds
    assert len(kb.hardware_list()) == 51
    assert {s.vendor for s in kb.hardware_list(vendor="apple")} == {"apple"}


def test_efficiency_comes_from_the_class_default_with_its_source(kb):
    a100 = kb.hardware("a100-sxm4-80gb")
    # data/efficiency.toml, class nvidia-datacenter-hbm: stas00 MAMF table, BabelStream, gpu-benches
    assert (a100.efficiency.compute_fraction, a100.efficiency.bandwidth_fraction) == (0.80, 0.85)
    assert a100.efficiency.kernel_overhead_s == 2.5e-6
    assert a100.efficiency.source.startswith("class default 'nvidia-datacenter-hbm'")
    phone = kb.hardware("snapdragon-8-gen-3")
    assert phone.efficiency.compute_fraction == 1.0 and phone.efficiency.source.startswith("ideal roofline")


def test_processors_of_a_system_on_chip(kb):
    phone = kb.hardware("snapdragon-8-gen-3")
    assert phone.default_processor() == "npu"  # no GPU peak is published; the NPU's INT8 rate is
    assert phone.processor_peak("npu", "int8") == 73e12  # llm.npu (arXiv 2407.05858) Table 2
    m2 = kb.hardware("apple-m2-ultra")
    assert m2.default_processor() == "gpu"
    with pytest.raises(MissingPeakError, match="no source read states the precision of the NPU figure"):
        m2.processor_peak("npu", "fp16")


def test_a_precision_can_run_at_another_published_rate_and_says_so(kb):
    from llmeff.roofline import roof_for

    m3 = kb.hardware("apple-m3-max")
    assert "fp16" not in m3.peak_flops_dense  # no FP16 figure is published for the M3 Max GPU
    roof = roof_for(m3, "fp16")
    assert roof.peak_flops == m3.peak_flops_dense["fp32"] == 14.32e12
    assert roof.peak_dtype == "fp32" and "Same as FP32" in roof.peak_source
    assert roof_for(kb.hardware("h100-sxm-80gb"), "fp16").peak_source is None
