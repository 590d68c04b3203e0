"""Prefill/decode disaggregation (DistServe arXiv 2401.09670, Splitwise arXiv 2311.18677): prefill
and decode run on separate devices, and each request's prompt KV cache crosses the interconnect once.

The prefill gains one row on the interconnect carrying the KV cache the prompt wrote (every
non-attention row's KV bytes: the k/v projections, MLA's latent, an SSM's final state), which is
B x S x kv_bytes_per_token for an unquantized, unsplit attention model; it adds to the TTFT. Both
pools are the same kind of device as the analysis's, with whatever parallelism earlier plugins set
(tensor-parallel applied first splits the KV, so each device sends its share). The decode rows are
unchanged: decode no longer shares its device with prefills, which is what removes the
interference (that gain shows in goodput, a queueing effect the roofline does not model).

Memory: the prefill device holds the weights, the prompt's KV and the prefill activations; the
decode device the weights, the whole generation's KV and one decode step's activations. The
footprint reported is the larger of the two (both pools use this device, so that one decides the
fit); the change lines give both. Sliding-window layers send the prompt's whole K/V (an engine
could send only the window). Not modelled: pool sizing, different device kinds per pool, layer-
wise transfer overlapped with the prefill compute, queueing and goodput.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmeff.techniques.builtin._systems_helpers import (
    activation_peak, append_rows, gib, link_missing, order_problem, processor_rows, transfer_row,
)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.operators import MemoryFootprint


@dataclass(frozen=True)
class PdDisaggregationParams(Params):
    """No settings: the pools are devices of the analysed kind."""


class PdDisaggregation(BaseTechnique):
    id = "pd-disaggregation"
    stage = "system"
    summary = "Prefill and decode on separate devices: the prompt's KV cache crosses the interconnect once."
    aliases = ("distserve", "splitwise")
    Params = PdDisaggregationParams

    def param_space(self, workload, hardware):
        return (PdDisaggregationParams(),)

    def applicability(self, workload, hardware, params):
        problem = (link_missing(hardware, "interconnect")
                   or order_problem(workload, self.id, exclusive=("pipeline-parallel",)))
        if problem:
            return refuse(problem)
        if _prompt_kv_bytes(workload.prefill.table) <= 0:
            return refuse("the prefill writes no KV cache: there is nothing to hand to a decode device")
        return OK

    def rewrite(self, workload, hardware, params):
        prefill_table = workload.prefill.table
        moved = _prompt_kv_bytes(prefill_table)
        prefill = append_rows(prefill_table, [transfer_row("kv_transfer", "interconnect", workload.kv_dtype,
                                                           layers=1, kv_bytes_base=moved)])
        memory = workload.memory
        prefill_device = MemoryFootprint(memory.weight_bytes, moved, activation_peak(workload, prefill))
        decode_device = MemoryFootprint(memory.weight_bytes, memory.kv_cache_bytes,
                                        _decode_activation_peak(workload))
        larger = max((prefill_device, decode_device), key=lambda m: m.total_bytes)
        which = "decode" if larger is decode_device else "prefill"
        new = with_tables(workload, prefill, workload.decode.table, memory=larger, devices=workload.devices * 2,
                          assumptions=workload.assumptions + (
                              f"prefill and decode on separate devices: the memory shown is the {which} device's",))
        return new, [
            f"prompt KV cache of {gib(moved)} sent once per batch over the interconnect (part of the TTFT)",
            f"prefill device holds {gib(prefill_device.total_bytes)} (weights, prompt KV, prefill activations); "
            f"decode device {gib(decode_device.total_bytes)} (weights, KV of the whole generation)",
            f"footprint reported: the {which} device's; devices {workload.devices} -> {workload.devices * 2}",
        ]


def _prompt_kv_bytes(table) -> float:
    """KV bytes the prefill writes (rows that produce K/V or state, not the attention rows reading them)."""
    writes = processor_rows(table) & (np.array(table.kinds) != "attention")
    return float((table.kv_bytes_base * table.layers)[writes].sum())


def _decode_activation_peak(workload) -> float:
    """The largest transient activations of one decode kernel, at the last step's context."""
    table = workload.decode.table
    context = np.minimum(float(workload.prompt_tokens + workload.output_tokens), table.context_cap)
    values = table.activation_bytes_base + table.activation_bytes_per_context * context
    mask = processor_rows(table)
    return float(values[mask].max()) if mask.any() else 0.0


PLUGIN = PdDisaggregation()
