"""Prefix caching (RadixAttention in SGLang, Prompt Cache, RAGCache; CacheGen for fetched caches).

A prompt prefix whose KV cache is already stored is not prefilled again. With hit ratio ``h`` the
first ``P = floor(h S)`` prompt tokens hit (at most ``S - 1``: the last position is always computed,
it yields the first output token), so the prefill computes ``N = S - P`` query tokens per sequence,
and they still attend to all ``S`` keys: the cached prefix's KV is read back. Every per-token row
(GEMMs, norms, KV writes) shrinks to ``N / S``; attention is the ``N x S`` rectangle (unfused) or its
unmasked part (fused with causal skipping); the weights are still read once; the final norm and LM
head are unchanged.

``shared``: the prefix is the same for every sequence of the batch (a system prompt, few-shot
examples, a shared document), so its KV is stored once for the batch, as RadixAttention and vLLM
share its blocks. ``source="host"``: the cached KV lives in host memory (or a KV store behind the
host link) and is fetched before the prefill, CacheGen-style, compressed ``compression_ratio`` times;
the transfer is a row on the host link, one way, not overlapped with the computation.

Not modelled: finding the prefix (radix-tree lookup), eviction and the hit ratio itself (it depends on
the traffic: SGLang reports 50-99% across its benchmarks, arXiv 2312.07104, section 6), the GPU
decoding of CacheGen's bitstream, layer-by-layer overlap of the fetch with compute, and decode
kernels that read a shared prefix once for the whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._serving_helpers import Passes, has_kv_cache, kv_slots, prefill_split_by, split_prefill
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable

SGLANG_HIT_RATIOS = (0.5, 0.99)  # "the cache hit rate ranges from 50% to 99%" (arXiv 2312.07104, section 6)
CACHEGEN_RATIO = 3.5  # KV size cut 3.5-4.3x vs KV-reusing systems (arXiv 2310.07240, abstract): the low end
SOURCES = ("device", "host")


@dataclass(frozen=True)
class PrefixCachingParams(Params):
    hit_ratio: float = SGLANG_HIT_RATIOS[0]
    shared: bool = True  # every sequence of the batch has the same prefix: its KV is stored once
    source: str = "device"  # "host": fetched over the host link before the prefill
    compression_ratio: float = 1.0  # of the fetched KV against its stored precision (CacheGen)

    def validate(self) -> None:
        if not 0.0 < self.hit_ratio < 1.0:
            raise InvalidInputError(f"must be between 0 and 1 (exclusive), got {self.hit_ratio}", field="hit_ratio")
        if self.source not in SOURCES:
            raise InvalidInputError(f"must be one of {', '.join(SOURCES)}, got '{self.source}'", field="source")
        if self.compression_ratio < 1.0:
            raise InvalidInputError(f"must be at least 1, got {self.compression_ratio}", field="compression_ratio")
        if self.source == "device" and self.compression_ratio != 1.0:
            raise InvalidInputError("applies only to KV fetched with source=host", field="compression_ratio")


def host_link_ready(hardware) -> bool:
    return hardware.host_link is not None and hardware.host_link.bandwidth_bytes_per_s is not None


def with_fetch_row(table: OperatorTable, dtype: str, fetched_bytes: float) -> OperatorTable:
    """``table`` with a first row moving ``fetched_bytes`` of KV over the host link."""
    values = {c: np.concatenate(([0.0], getattr(table, c))) for c in NUMERIC_COLUMNS}
    values["layers"][0], values["kv_bytes_base"][0], values["context_cap"][0] = 1.0, fetched_bytes, np.inf
    return OperatorTable(names=("prefix_kv_fetch",) + table.names, kinds=("memory",) + table.kinds,
                         dtypes=(dtype,) + table.dtypes, resources=("host-link",) + table.resources, **values)


class PrefixCaching(BaseTechnique):
    id = "prefix-caching"
    stage = "system"
    summary = "A cached prompt prefix is not prefilled again; the new tokens still attend to all keys."
    Params = PrefixCachingParams

    def param_space(self, workload, hardware):
        space = [PrefixCachingParams(hit_ratio=h) for h in SGLANG_HIT_RATIOS]
        if host_link_ready(hardware):
            space += [PrefixCachingParams(source="host", compression_ratio=r) for r in (1.0, CACHEGEN_RATIO)]
        return tuple(space)

    def applicability(self, workload, hardware, params):
        if not has_kv_cache(workload):
            return refuse("the model keeps no per-token KV cache to reuse (a recurrent state, or no architecture)")
        if prefill_split_by(workload):
            return refuse(f"{prefill_split_by(workload)} already split the prefill: stacking it with {self.id} "
                          "is not modelled")
        if self._cached(workload, params) < 1:
            return refuse(f"a hit ratio of {params.hit_ratio} caches no whole token of a "
                          f"{workload.prompt_tokens}-token prompt")
        if params.source == "host" and not host_link_ready(hardware):
            return refuse(f"{hardware.id} lists no host link bandwidth to fetch the cached KV over")
        return OK

    @staticmethod
    def _cached(workload, params) -> int:
        return min(math.floor(params.hit_ratio * workload.prompt_tokens), workload.prompt_tokens - 1)

    def rewrite(self, workload, hardware, params):
        arch, s, batch = workload.architecture, workload.prompt_tokens, workload.batch
        cached = self._cached(workload, params)
        new_tokens = s - cached
        prefill, peak = split_prefill(workload, (Passes(1, new_tokens, s, s),))
        kv = workload.memory.kv_cache_bytes
        prefix = kv / batch * kv_slots(arch, cached) / kv_slots(arch, s + workload.output_tokens)
        copies = 1 if params.shared else batch
        kv_after = kv - (batch - copies) * prefix
        lines = [f"{cached} of {s} prompt tokens hit the cache: the prefill computes {new_tokens} query tokens per "
                 f"sequence, attending to all {s} keys (the cached KV is read back)"]
        if params.source == "host":
            fetched = copies * prefix / params.compression_ratio
            prefill = with_fetch_row(prefill, workload.activation_dtype, fetched)
            lines.append(f"cached KV fetched over the host link ({hardware.host_link.kind}) before the prefill: "
                         f"{fetched / 1e9:.3f} GB ({copies} prefix cop{'y' if copies == 1 else 'ies'}, compressed "
                         f"{params.compression_ratio}x); decoding a compressed bitstream is not charged")
        flops = lambda table: float((table.flops_base * table.layers).sum())  # noqa: E731
        lines.append(f"prefill {flops(workload.prefill.table) / 1e12:.2f} -> {flops(prefill) / 1e12:.2f} TFLOP; "
                     + (f"the {cached}-token prefix's KV is stored once for the batch of {batch}: KV footprint "
                        f"{kv / 1e9:.3f} -> {kv_after / 1e9:.3f} GB" if params.shared and batch > 1 else
                        "KV footprint unchanged (each sequence holds its own prefix)"))
        memory = replace(workload.memory, kv_cache_bytes=kv_after, activation_bytes=peak)
        new = replace(workload, prefill=replace(workload.prefill, table=prefill, tokens=batch * new_tokens),
                      memory=memory, assumptions=workload.assumptions + (
                          f"prefix caching: {cached} of {s} prompt tokens cached ({params.source})",))
        return new, lines


PLUGIN = PrefixCaching()
