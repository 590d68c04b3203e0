"""MoE expert offloading (Eliseev and Mazur, arXiv 2312.17238): routed experts live in host memory,
a cache of ``cache_experts`` experts per MoE layer stays on the device, and each forward pass
fetches the experts it routes to that miss the cache over the host link.

A pass reads the expert rows' weights (the distinct experts its tokens reach, uniform routing as
in the workload build); a share ``hit_rate`` of them is already on the device, the rest crosses
the host link: per expert row a transfer of (1 - hit_rate) x its weight bytes, per layer, on the
pass's critical path (which experts are needed is known only after the router runs). With
``hit_rate`` unset it is cache_experts / E: under uniform routing any cache of c of the E experts
holds a routed expert with probability c/E. Caches exploit the locality of real routing and do
better (the paper's LRU cache); give the measured rate then. Device memory keeps the non-expert
weights, the cached experts and one layer's fetched experts; with ``cache_experts`` unset, the
most experts per layer that fit the device's memory. Not modelled: speculative prefetching of the
next layer's experts (overlapped with compute), mixed quantization of the offloaded experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._systems_helpers import (
    EXPERT_ROWS, append_rows, gib, link_missing, order_problem, stored_weight_bytes, touched_experts, transfer_row,
)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

EXCLUSIVE = ("offloading", "pipeline-parallel")  # another host placement; rows holding a critical path


@dataclass(frozen=True)
class ExpertOffloadingParams(Params):
    cache_experts: int | None = None  # experts per MoE layer kept on the device; None: the most that fit
    hit_rate: float | None = None  # share of routed experts found on the device; None: cache_experts / E

    def validate(self) -> None:
        if self.cache_experts is not None and (not isinstance(self.cache_experts, int) or self.cache_experts < 0):
            raise InvalidInputError(f"must be a non-negative integer, got {self.cache_experts}", field="cache_experts")
        if self.hit_rate is not None and not 0.0 <= self.hit_rate <= 1.0:
            raise InvalidInputError(f"must be between 0 and 1, got {self.hit_rate}", field="hit_rate")


class ExpertOffloading(BaseTechnique):
    id = "expert-offloading"
    stage = "system"
    summary = "MoE experts in host memory with a device cache: cache misses fetch expert weights over the host link."
    Params = ExpertOffloadingParams

    def param_space(self, workload, hardware):
        arch = workload.architecture
        experts = arch.moe.num_experts if arch is not None and arch.moe else 8
        return (ExpertOffloadingParams(), ExpertOffloadingParams(cache_experts=experts // 4),
                ExpertOffloadingParams(cache_experts=experts // 2))

    def applicability(self, workload, hardware, params):
        arch = workload.architecture
        problem = link_missing(hardware, "host-link") or order_problem(workload, self.id, exclusive=EXCLUSIVE)
        if problem:
            return refuse(problem)
        if arch is None or not arch.is_moe:
            return refuse("a dense model has no experts to offload")
        if not set(EXPERT_ROWS) & set(workload.decode.table.names):
            return refuse("the workload has no routed-expert rows")
        if params.cache_experts is not None and params.cache_experts > arch.moe.num_experts:
            return refuse(f"cache_experts {params.cache_experts} exceeds the {arch.moe.num_experts} experts per layer")
        if params.cache_experts is None:
            why = self._fitting_cache(workload, hardware)[1]
            if why:
                return refuse(why)
        return OK

    @staticmethod
    def _sizes(workload) -> tuple[float, float, float]:
        """(all routed experts' bytes, one expert's bytes in one layer, fetch buffer of one layer)."""
        arch, table = workload.architecture, workload.decode.table
        names = np.array(table.names)
        experts = np.isin(names, EXPERT_ROWS)
        routed = float(stored_weight_bytes(workload)[experts].sum())
        moe_layers = float(table.layers[names == "expert_down"].sum())
        one = routed / (arch.moe.num_experts * moe_layers)
        # the prefill of one layer reaches the most distinct experts: that is the buffer to land them in
        buffer = touched_experts(arch, max(workload.prefill.tokens, workload.decode.tokens)) * one
        return routed, one, buffer

    def _fitting_cache(self, workload, hardware) -> tuple[int, str]:
        capacity = hardware.memory_capacity_bytes
        if capacity is None:
            return 0, f"hardware '{hardware.id}' lists no memory capacity: give cache_experts"
        memory, experts = workload.memory, workload.architecture.moe.num_experts
        routed, _, buffer = self._sizes(workload)
        if memory.total_bytes <= capacity:
            return 0, (f"the whole model ({gib(memory.total_bytes)}) fits the {gib(capacity)} of '{hardware.id}': "
                       "no expert needs offloading (give cache_experts to force it)")
        room = capacity - (memory.total_bytes - routed) - buffer
        if room < 0:
            return 0, (f"without any expert, weights, KV cache, activations and the fetch buffer "
                       f"({gib(capacity - room)}) exceed the {gib(capacity)} of '{hardware.id}'")
        return min(experts, math.floor(room / routed * experts)), ""

    def rewrite(self, workload, hardware, params):
        arch = workload.architecture
        experts = arch.moe.num_experts
        cache = params.cache_experts if params.cache_experts is not None else self._fitting_cache(workload, hardware)[0]
        hit = params.hit_rate if params.hit_rate is not None else cache / experts
        tables, fetched = [], []
        for phase in (workload.prefill, workload.decode):
            table = phase.table
            rows = [transfer_row(f"fetch_{name}", "host-link", workload.activation_dtype, layers=table.layers[i],
                                 weight_bytes=(1.0 - hit) * table.weight_bytes[i])
                    for i, name in enumerate(table.names) if name in EXPERT_ROWS]
            fetched.append(sum(r["weight_bytes"] * r["layers"] for r in rows))
            tables.append(append_rows(table, rows))
        routed, _, buffer = self._sizes(workload)
        memory = workload.memory
        weights = memory.weight_bytes - routed * (1.0 - cache / experts) + buffer
        new = with_tables(workload, *tables, memory=replace(memory, weight_bytes=weights))
        return new, [
            f"{cache} of {experts} experts per MoE layer cached on the device; hit rate {hit:.3f}"
            + (" (uniform routing: cache/E)" if params.hit_rate is None else ""),
            f"misses fetch {gib(fetched[0])} per prefill and {gib(fetched[1])} per decode step over the host link",
            f"device weights {gib(memory.weight_bytes)} -> {gib(weights)} (routed experts {gib(routed)} on the host, "
            f"a {gib(buffer)} fetch buffer)",
        ]


PLUGIN = ExpertOffloading()
