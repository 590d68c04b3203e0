"""CUDA graphs: the decode kernels cost the graph's measured per-node time, on NVIDIA GPUs only."""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.roofline import estimate
from llmeff.techniques.builtin.cuda_graphs import PLUGIN, CudaGraphsParams
from llmeff.techniques.checks import check_technique


def test_factor_from_the_a100_small_kernel_benchmark(workload, device):
    a100 = device("a100-sxm4-80gb")
    base = workload("llama-2-7b", batch=1, prompt=128, output=64)
    graphed = PLUGIN.apply(base, a100, CudaGraphsParams())
    # gpu-small-kernels a100_80.txt / a100_80_graph.txt: 65,536 bytes per launch at 25 vs 49 GB/s
    eager, graph = 65536 / 25e9, 65536 / 49e9
    assert (eager * 1e6, graph * 1e6) == (pytest.approx(2.62, abs=0.01), pytest.approx(1.34, abs=0.01))
    assert graphed.decode.kernel_overhead_factor == pytest.approx(graph / eager)
    assert graphed.prefill.kernel_overhead_factor == 1.0  # prefill stays eager
    # each decode kernel (one per row and layer) saves (1 - factor) x the device's 2.5 us launch cost
    kernels = base.decode.table.layers.sum()
    saved = estimate(base, a100).tpot_s - estimate(graphed, a100).tpot_s
    assert saved == pytest.approx(kernels * 2.5e-6 * (1 - graph / eager))


def test_refuses_devices_that_are_not_nvidia_gpus(workload, device):
    for other in ("snapdragon-8-gen-3", "xeon-platinum-8480plus"):
        verdict = PLUGIN.applicability(workload(), device(other), CudaGraphsParams())
        assert not verdict.ok and "capability nvidia-gpu" in verdict.reason
    with pytest.raises(TechniqueNotApplicableError, match="cuda-graphs cannot apply"):
        PLUGIN.apply(workload(), device("snapdragon-8-gen-3"), CudaGraphsParams())


def test_invalid_factor_names_the_field():
    with pytest.raises(InvalidInputError, match=r"field 'graph_to_eager': must be in \(0, 1\]"):
        CudaGraphsParams(graph_to_eager=1.5)


@pytest.mark.parametrize("model", ["llama-2-7b", "mixtral-8x7b", "llama-2-70b"])
def test_conformance(workload, device, model):
    base = workload(model, batch=2, prompt=256, output=16)
    for hardware in ("h100-sxm-80gb", "snapdragon-8-gen-3"):
        assert check_technique(PLUGIN, base, device(hardware)) == []
