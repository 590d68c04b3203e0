"""Offloading (FlexGen, arXiv 2303.06865): a share of the weights, and optionally of the KV cache,
lives in host memory and is streamed to the device over the host link.

Every forward pass (the prefill, and each decode step) streams ``weight_fraction`` of every weight
row's bytes over the host link (FlexGen places a percentage of each layer's weights on the CPU,
section 4); the device kernels then read them from device memory as before. With
``kv_fraction``, that share of the KV cache stays on the host: each decode step streams it in
(attention reads) and the new token's K and V out, and the prefill writes the prompt's share out.
FlexGen overlaps loading the next layer with computing the current one and takes the per-layer
time as the maximum of its I/O and compute terms (section 4), hence ``overlap`` (default on):
the phases' resources run concurrently, so a phase takes the longer of the compute rows and the
host-link rows. Without overlap they add up (naive offloading).

Device memory keeps 1 - fraction of the weights and KV plus a staging buffer of two layers'
streamed share (the layer being computed and the one being prefetched), an average layer taken as
1/L of the total. With ``weight_fraction`` unset the smallest share that makes the footprint fit
the device's memory is chosen. Not modelled: FlexGen's disk tier, CPU-side attention over the
offloaded KV, its batch-size search and compression (separate plugins); llama.cpp's GPU/CPU layer
split (CPU rows would need the host's DRAM bandwidth, which the roofline cannot give a processor);
flash-storage streaming of sparse neurons (LLM in a flash, PowerInfer), which needs activation
sparsity and a flash roof.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._systems_helpers import (
    activation_peak, append_rows, gib, link_missing, order_problem, processor_rows, transfer_row,
)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

STAGING_LAYERS = 2  # computed layer + prefetched layer (FlexGen's overlapped schedule)
EXCLUSIVE = ("expert-offloading", "pipeline-parallel")  # other host placements / per-stage layer counts


@dataclass(frozen=True)
class OffloadingParams(Params):
    weight_fraction: float | None = None  # share of weights on the host; None: the least that fits
    kv_fraction: float = 0.0  # share of the KV cache on the host
    overlap: bool = True  # transfers overlap compute (FlexGen); False: they add up

    def validate(self) -> None:
        if self.weight_fraction is not None and not 0.0 <= self.weight_fraction <= 1.0:
            raise InvalidInputError(f"must be between 0 and 1, got {self.weight_fraction}", field="weight_fraction")
        if not 0.0 <= self.kv_fraction <= 1.0:
            raise InvalidInputError(f"must be between 0 and 1, got {self.kv_fraction}", field="kv_fraction")
        if self.weight_fraction == 0.0 and self.kv_fraction == 0.0:
            raise InvalidInputError("weight_fraction and kv_fraction are both 0: nothing is offloaded",
                                    field="weight_fraction")


class Offloading(BaseTechnique):
    id = "offloading"
    stage = "system"
    summary = "FlexGen-style offloading: a share of weights/KV in host memory, streamed over the host link each pass."
    aliases = ("flexgen",)
    Params = OffloadingParams

    def param_space(self, workload, hardware):
        return (OffloadingParams(), OffloadingParams(weight_fraction=0.5), OffloadingParams(weight_fraction=1.0),
                OffloadingParams(weight_fraction=1.0, kv_fraction=1.0))

    def applicability(self, workload, hardware, params):
        problem = link_missing(hardware, "host-link") or order_problem(workload, self.id, exclusive=EXCLUSIVE)
        if problem:
            return refuse(problem)
        if workload.architecture is None:
            return refuse("the workload carries no architecture (layer count for the staging buffer)")
        if params.weight_fraction is None:
            fraction, why = self._fitting_fraction(workload, hardware, params.kv_fraction)
            if why:
                return refuse(why)
        return OK

    def _fitting_fraction(self, workload, hardware, kv_fraction: float) -> tuple[float, str]:
        """The least weight share on the host that fits the device memory, or a reason there is none."""
        capacity = hardware.memory_capacity_bytes
        if capacity is None:
            return 0.0, f"hardware '{hardware.id}' lists no memory capacity: give weight_fraction"
        memory, layers = workload.memory, workload.architecture.num_layers
        weights = memory.weight_bytes
        rest = _kv_resident(memory.kv_cache_bytes, kv_fraction, layers) + memory.activation_bytes
        if weights + rest <= capacity:
            return 0.0, (f"the footprint ({gib(weights + rest)}) already fits the {gib(capacity)} of "
                         f"'{hardware.id}': nothing needs offloading (give weight_fraction to force it)")
        # resident weights W (1 - w + 2w/L) must fit what the KV cache and activations leave
        per_share = weights * (1.0 - STAGING_LAYERS / layers)
        fraction = (weights + rest - capacity) / per_share if per_share > 0 else float("inf")
        if fraction > 1.0:
            return 0.0, (f"even with every weight on the host, KV cache and activations ({gib(rest)}) plus "
                         f"staging exceed the {gib(capacity)} of '{hardware.id}': offload KV (kv_fraction)")
        return fraction, ""

    def rewrite(self, workload, hardware, params):
        w = params.weight_fraction
        if w is None:
            w = self._fitting_fraction(workload, hardware, params.kv_fraction)[0]
        kv, dtype = params.kv_fraction, workload.activation_dtype
        phases = []
        for phase in (workload.prefill, workload.decode):
            table = phase.table
            on_device = processor_rows(table)
            rows = []
            if w > 0:
                streamed = w * float((table.weight_bytes * table.layers)[on_device].sum())
                rows.append(transfer_row("host_weights", "host-link", dtype, layers=1, weight_bytes=streamed))
            for i in np.flatnonzero(on_device & ((table.kv_bytes_base + table.kv_bytes_per_context) > 0)):
                # prefill attention reads the prompt's fresh K/V on the device: only the writes go out
                if kv > 0 and (phase.name == "decode" or table.kinds[i] != "attention"):
                    rows.append(transfer_row("host_kv", "host-link", dtype, layers=table.layers[i],
                                             kv_bytes_base=kv * table.kv_bytes_base[i],
                                             kv_bytes_per_context=kv * table.kv_bytes_per_context[i],
                                             context_cap=table.context_cap[i]))
            phases.append(replace(phase, table=append_rows(table, rows),
                                  overlap_resources=phase.overlap_resources or params.overlap))
        memory, layers = workload.memory, workload.architecture.num_layers
        weights = memory.weight_bytes * (1.0 - w + STAGING_LAYERS * w / layers)
        new_memory = replace(memory, weight_bytes=weights,
                             kv_cache_bytes=_kv_resident(memory.kv_cache_bytes, kv, layers),
                             activation_bytes=activation_peak(workload, phases[0].table))
        new = replace(with_tables(workload, phases[0].table, phases[1].table, memory=new_memory),
                      prefill=phases[0], decode=phases[1])
        streamed = [w * float((p.table.weight_bytes * p.table.layers)[processor_rows(p.table)].sum())
                    for p in (workload.prefill, workload.decode)]
        return new, [
            f"{w:.3f} of the weights in host memory" + (" (the least that fits)" if params.weight_fraction is None
                                                        else "") + f", {kv:.3f} of the KV cache",
            f"host link carries {gib(streamed[0])} of weights per prefill and {gib(streamed[1])} per decode step",
            ("transfers overlap compute: a phase takes the longer of compute and host-link time" if params.overlap
             else "transfers and compute run one after the other"),
            f"device memory: weights {gib(memory.weight_bytes)} -> {gib(weights)} (with a {STAGING_LAYERS}-layer "
            f"staging buffer), KV {gib(memory.kv_cache_bytes)} -> {gib(new_memory.kv_cache_bytes)}",
        ]


def _kv_resident(kv_bytes: float, fraction: float, layers: int) -> float:
    """KV kept on the device: the rest of the cache plus two layers' streamed share in flight."""
    return kv_bytes * (1.0 - fraction + STAGING_LAYERS * fraction / layers)


PLUGIN = Offloading()
