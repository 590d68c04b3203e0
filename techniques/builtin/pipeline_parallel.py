"""Pipeline parallelism (GPipe, arXiv 1811.06965): the layers split into p stages on p devices.

A batch of B sequences is split into m micro-batches of B/m that flow through the stages one after
another, and every forward pass (the prefill, and each decode step) fills and drains the pipeline
(GPipe's synchronous schedule). For identical micro-batches, the last one leaves after the sum of
the stage times plus (m - 1) times the slowest stage (first principles: a flow shop of identical
jobs); with equal stages that is (m + p - 1) stage times, idle for the bubble fraction
(p - 1)/(m + p - 1) (GPipe section 2.2).

So the tables this plugin writes are the pipeline's critical path for one batch, not one device's
work: every per-layer row runs for one micro-batch (FLOPs, activations and KV divided by m; weights
read again per micro-batch) on n + (m - 1) x ceil(n/p) layers, where n is its layer count and
ceil(n/p) its layers on the fullest stage. The embedding and the LM head run once per micro-batch
on the path. p - 1 point-to-point sends of the micro-batch's hidden states (tokens/m x hidden x
activation bytes) are added on the interconnect (on PCIe-only cards, the host link). With m = 1
(a single sequence) the pass takes the whole model's time plus the sends: no speedup. The
estimate's TTFT and TPOT are then latencies of the batch through the pipeline, and its throughput
(B x output tokens / end-to-end latency) is that of one pipeline serving this batch; each device is busy only m/(m + p - 1) of the pass.

The memory footprint is the fullest device's: ceil(n/p) of each layer group's weights and KV, plus
the larger of the embedding (first stage) and LM head with final norm (last stage). Not modelled:
schedules that keep micro-batches of different decode steps in flight without draining (which
hide the bubble once m >= p), the tail stage's extra LM-head time in the bottleneck term, unequal
stage splits chosen to balance the embedding and head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.param_count import count_parameters
from llmeff.techniques.builtin._systems_helpers import (
    EXPERT_ROWS, LINKS, activation_peak, append_rows, bytes_of, gib, link_missing, order_problem,
    stored_weight_bytes, touched_experts, transfer_row,
)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

WHOLE_MODEL = ("embedding", "final_norm", "lm_head", "tp_logits_allgather")  # once per micro-batch
LATER = ("npu-outlier-offload", "npu-subgraph-scheduling")
# these read per-device layer counts and weights from the rows, which here hold the critical path instead
EXCLUSIVE = ("offloading", "expert-offloading", "pd-disaggregation")


@dataclass(frozen=True)
class PipelineParallelParams(Params):
    stages: int = 2  # devices the layers are split over
    micro_batches: int = 1  # the batch is split into this many equal micro-batches

    def validate(self) -> None:
        if not isinstance(self.stages, int) or self.stages < 2:
            raise InvalidInputError(f"must be an integer of at least 2, got {self.stages}", field="stages")
        if not isinstance(self.micro_batches, int) or self.micro_batches < 1:
            raise InvalidInputError(f"must be a positive integer, got {self.micro_batches}", field="micro_batches")


def send_link(hardware) -> str:
    """Stages send over the GPU-to-GPU link, or over PCIe (the host link) on cards that have none."""
    return "interconnect" if hardware.interconnect is not None else "host-link"


def _send_link_problem(hardware) -> str | None:
    return link_missing(hardware, send_link(hardware))


class PipelineParallel(BaseTechnique):
    id = "pipeline-parallel"
    stage = "system"
    order = -4  # splits layers after tensor parallelism divided them
    summary = "GPipe pipeline parallelism: layers over p devices, m micro-batches, p-1 sends, bubble (p-1)/(m+p-1)."
    aliases = ("pp",)
    Params = PipelineParallelParams

    def param_space(self, workload, hardware):
        batch = workload.batch
        return tuple(PipelineParallelParams(stages=p, micro_batches=m)
                     for p, m in ((2, 1), (4, 1), (2, 2), (4, 4)) if batch % m == 0)

    def applicability(self, workload, hardware, params):
        arch = workload.architecture
        problem = (_send_link_problem(hardware) or order_problem(workload, self.id, LATER, EXCLUSIVE)
                   or (None if arch is not None else "the workload carries no architecture to split"))
        if problem:
            return refuse(problem)
        if params.stages > arch.num_layers:
            return refuse(f"stages {params.stages} exceed the model's {arch.num_layers} layers")
        if workload.batch % params.micro_batches:
            return refuse(f"micro_batches {params.micro_batches} does not divide the batch of {workload.batch}")
        return OK

    def rewrite(self, workload, hardware, params):
        p, m, arch = params.stages, params.micro_batches, workload.architecture
        link = send_link(hardware)
        tables = [self._path(phase, arch, p, m, workload.activation_dtype, link)
                  for phase in (workload.prefill, workload.decode)]
        memory = self._memory(workload, tables[0], p)
        bubble = (p - 1) / (m + p - 1)
        fullest = sum(math.ceil(n / p) for n in _group_layers(workload.decode.table))
        new = with_tables(workload, *tables, memory=memory, devices=workload.devices * p,
                          assumptions=workload.assumptions + (
                              f"pipeline over {p} stages, {m} micro-batch(es): tables are one batch's critical "
                              "path, memory is the fullest device's",))
        send = workload.prefill.tokens / m * arch.hidden_size * bytes_of(workload.activation_dtype)
        return new, [
            f"{arch.num_layers} layers over {p} stages (fullest stage {fullest} layers), batch of {workload.batch} "
            f"as {m} micro-batch(es) of {workload.batch // m}",
            f"each pass takes the whole model for one micro-batch plus {m - 1} more slowest-stage slot(s): "
            f"bubble fraction (p-1)/(m+p-1) = {bubble:.3f}" + ("; no speedup for one micro-batch" if m == 1 else ""),
            f"{p - 1} point-to-point sends of {send / 1e6:.2f} MB per prefill micro-batch on the {link}"
            + (" (no GPU-to-GPU link listed: the sends cross PCIe)" if link == "host-link" else ""),
            f"per device: weights {gib(workload.memory.weight_bytes)} -> {gib(memory.weight_bytes)}, KV "
            f"{gib(workload.memory.kv_cache_bytes)} -> {gib(memory.kv_cache_bytes)}; throughput is B x output / "
            f"latency of this one batch (devices busy {1 - bubble:.3f} of each pass)",
        ]

    @staticmethod
    def _path(phase, arch, p: int, m: int, dtype: str, link: str):
        table = phase.table
        names = np.array(table.names)
        per_layer = ~np.isin(names, WHOLE_MODEL)
        weight = table.weight_bytes.copy()
        weight[names == "embedding"] /= m  # the lookup reads one row per token of the micro-batch
        touched = touched_experts(arch, phase.tokens)
        if touched:  # a micro-batch reaches fewer distinct experts than the whole batch
            weight = np.where(np.isin(names, EXPERT_ROWS), weight * touched_experts(arch, phase.tokens / m) / touched,
                              weight)
        ceil = np.ceil(table.layers / p)
        layers = np.where(per_layer, table.layers + (m - 1) * ceil, table.layers)
        path = table.replace(
            layers=layers, weight_bytes=weight,
            **{c: getattr(table, c) / m for c in ("flops_base", "flops_per_context", "activation_bytes_base",
                                                  "activation_bytes_per_context", "kv_bytes_base",
                                                  "kv_bytes_per_context")})
        send = phase.tokens / m * arch.hidden_size * bytes_of(dtype)
        return append_rows(path, [transfer_row("pp_send", link, dtype, layers=p - 1,
                                               activation_bytes_base=send)])

    @staticmethod
    def _memory(workload, prefill, p: int):
        """The fullest device: ceil(n/p) of each group's layers, and the larger end of the model."""
        table, arch, memory = workload.decode.table, workload.architecture, workload.memory
        names = np.array(table.names)
        stored = stored_weight_bytes(workload)
        on_device = np.where(table.layers > 0, np.ceil(table.layers / p) / np.where(table.layers > 0, table.layers, 1),
                             0.0)
        per_layer = ~np.isin(names, WHOLE_MODEL) & np.array([r not in LINKS for r in table.resources])
        layer_saving = float((stored * (1.0 - on_device))[per_layer].sum())
        head = float(stored[np.isin(names, ("lm_head", "final_norm"))].sum())
        head_in_old = head - (float(stored[names == "lm_head"].sum()) if arch.tie_word_embeddings else 0.0)
        lookup = table.row(table.index("embedding"))
        element = lookup.weight_bytes / (workload.decode.tokens * arch.hidden_size)  # bytes per table entry
        count = count_parameters(arch)
        embedding = (count.embedding + count.position_embedding) * element
        weights = memory.weight_bytes - layer_saving - embedding - head_in_old + max(embedding, head)
        kv_layers = table.kv_bytes_base + table.kv_bytes_per_context * np.minimum(
            workload.prompt_tokens + workload.output_tokens, table.context_cap)
        kv_total = float((kv_layers * table.layers)[per_layer].sum())
        kv_share = float((kv_layers * table.layers * on_device)[per_layer].sum()) / kv_total if kv_total else 1.0
        return replace(memory, weight_bytes=weights, kv_cache_bytes=memory.kv_cache_bytes * kv_share,
                       activation_bytes=activation_peak(workload, prefill))


def _group_layers(table) -> list[float]:
    """Layer counts of the layer groups (one o_proj, or norms, row per group)."""
    name = "o_proj" if "o_proj" in table.names else "norms"
    return [float(n) for row, n in zip(table.names, table.layers) if row == name]


PLUGIN = PipelineParallel()
