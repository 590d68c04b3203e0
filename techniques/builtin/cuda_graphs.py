"""CUDA graphs: the decode step is captured once and replayed as one graph launch.

Replaying a graph still dispatches every kernel node on the GPU, but the host no longer launches
them one by one, so the per-kernel cost drops to the graph's per-node cost. The factor comes from one
benchmark measuring both on the same machine: te42kyfo/gpu-benches ``gpu-small-kernels`` runs 10,000
back-to-back launches of a SCALE kernel over 4096 doubles (65,536 bytes read and written per launch,
``main.cu``) eagerly and, with ``-graph``, captured in one graph, and prints GB/s per thread-block
size. On an A100 80GB (``a100_80.txt`` / ``a100_80_graph.txt`` @11f5daa) the 4096-double row peaks
at 25 GB/s eager and 49 GB/s as a graph: 2.62 us and 1.34 us per kernel, a factor of 25 / 49 = 0.51.
On an H200 (``h200.txt`` @c35574e: 27 GB/s; ``h200_graph.txt`` @11f5daa: 30 GB/s) the same row gives
2.43 us and 2.18 us, a factor of 0.90: offered as the other setting worth trying.

What it models: ``Phase.kernel_overhead_factor`` of the decode phase is multiplied by the factor, so
each decode kernel costs factor x the device's per-kernel overhead (data/efficiency.toml: 2.5 us on
NVIDIA datacenter GPUs, from the same benchmark's eager rows). Prefill is left eager: serving engines
capture the decode step only, as its shapes repeat (batch size buckets) while prompt lengths vary.

Not modelled: the framework (Python) dispatch cost per operator that graphs also remove, which the
device efficiency does not include; graph capture time and memory; padding the batch up to a
captured bucket size. NVIDIA GPUs only (capability ``nvidia-gpu``): HIP graphs and other vendors'
equivalents have their own costs, not measured here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.hardware.capabilities import capabilities
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

KERNEL_BYTES = 4096 * 2 * 8  # 4096 doubles read and written per launch (gpu-small-kernels main.cu)
# seconds per kernel = bytes / printed throughput, best thread-block column of the 4096-double row
A100_EAGER_S, A100_GRAPH_S = KERNEL_BYTES / 25e9, KERNEL_BYTES / 49e9  # a100_80(_graph).txt @11f5daa: 2.62, 1.34 us
H200_EAGER_S, H200_GRAPH_S = KERNEL_BYTES / 27e9, KERNEL_BYTES / 30e9  # h200.txt @c35574e, h200_graph.txt @11f5daa
A100_GRAPH_TO_EAGER = A100_GRAPH_S / A100_EAGER_S  # 0.510
H200_GRAPH_TO_EAGER = H200_GRAPH_S / H200_EAGER_S  # 0.900


@dataclass(frozen=True)
class CudaGraphsParams(Params):
    graph_to_eager: float = A100_GRAPH_TO_EAGER  # per-kernel cost replayed in a graph / launched eagerly

    def validate(self) -> None:
        if not 0.0 < self.graph_to_eager <= 1.0:
            raise InvalidInputError(f"must be in (0, 1] (graph over eager per-kernel cost), got {self.graph_to_eager}",
                                    field="graph_to_eager")


class CudaGraphs(BaseTechnique):
    id = "cuda-graphs"
    stage = "system"
    summary = "Decode step captured as one CUDA graph: each kernel costs the graph's per-node dispatch, not a launch."
    Params = CudaGraphsParams

    def param_space(self, workload, hardware):
        return (CudaGraphsParams(), CudaGraphsParams(graph_to_eager=H200_GRAPH_TO_EAGER))

    def applicability(self, workload, hardware, params):
        if "nvidia-gpu" not in capabilities(hardware):
            return refuse(f"CUDA graphs need an NVIDIA GPU (capability nvidia-gpu); {hardware.id} is a "
                          f"{hardware.vendor} {hardware.kind}")
        return OK

    def rewrite(self, workload, hardware, params):
        overhead = hardware.efficiency.kernel_overhead_s
        before = workload.decode.kernel_overhead_factor
        after = before * params.graph_to_eager
        kernels = int(workload.decode.table.layers.sum())
        decode = replace(workload.decode, kernel_overhead_factor=after)
        new = replace(workload, decode=decode, assumptions=workload.assumptions + (
            f"decode step replayed as a CUDA graph (per-kernel cost x {params.graph_to_eager:.3f})",))
        lines = [
            f"decode kernel overhead factor {before:.3f} -> {after:.3f} (graph replay per node / eager launch, "
            "te42kyfo/gpu-benches gpu-small-kernels)",
            f"{kernels} kernels per decode step: launch cost {kernels * overhead * before * 1e6:.1f} us -> "
            f"{kernels * overhead * after * 1e6:.1f} us at {overhead * 1e6:.2f} us per kernel",
        ]
        if overhead == 0:
            lines.append(f"{hardware.id}'s efficiency charges no kernel overhead, so the estimate does not change")
        return new, lines


PLUGIN = CudaGraphs()
