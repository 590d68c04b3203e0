"""Paged KV cache (PagedAttention in vLLM; LightLLM's token-granular TokenAttention is ``block_size=1``).

The KV cache lives in fixed blocks of ``block_size`` tokens allocated on demand through a block table,
so a sequence of ``n`` tokens holds ``ceil(n / b)`` blocks: at most one partly filled block, instead of
a contiguous region reserved up front for the longest sequence it might become (vLLM, arXiv
2309.06180, sections 3 and 4.1). Layers with a sliding window or attention chunk keep at most that
many tokens, in blocks too.

What it models: the memory footprint's KV term becomes the paged allocation; the change lines give the
KV footprint a contiguous allocator would reserve (``reserve_tokens`` per sequence, by default the
model's maximum context, as static-cache systems pre-allocate) and the largest batch that fits in the
device memory under each allocator. Per-step time is unchanged: attention still reads only the tokens
a sequence holds.

What it does not model: the block-table indirection's kernel cost (vLLM section 7.1, Fig. 18a: 20-26%
higher attention kernel latency than FasterTransformer's contiguous kernel; the roofline has no
per-row efficiency to carry it), copy-on-write sharing of blocks between parallel samples or beams,
external fragmentation, and swapping or recomputation when blocks run out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._serving_helpers import has_kv_cache, kv_slots
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

VLLM_BLOCK_TOKENS = 16  # "vLLM sets its default block size as 16" (arXiv 2309.06180, section 7.2)
MAX_BLOCK_TOKENS = 1024  # a validation bound: the paper's block-size sweep stops at 256 (Fig. 18b)


@dataclass(frozen=True)
class PagedKVParams(Params):
    block_size: int = VLLM_BLOCK_TOKENS
    reserve_tokens: int | None = None  # a contiguous allocator's reservation per sequence; None: max context

    def validate(self) -> None:
        if not 1 <= self.block_size <= MAX_BLOCK_TOKENS:
            raise InvalidInputError(f"must be between 1 and {MAX_BLOCK_TOKENS} tokens, got {self.block_size}",
                                    field="block_size")
        if self.reserve_tokens is not None and self.reserve_tokens < 1:
            raise InvalidInputError(f"must be a positive number of tokens, got {self.reserve_tokens}",
                                    field="reserve_tokens")


def largest_batch(capacity: float | None, weight_bytes: float, per_sequence_bytes: float) -> str:
    """How many sequences fit beside the weights, as text (the device may list no capacity)."""
    if capacity is None:
        return "unknown (the device lists no memory capacity)"
    if weight_bytes >= capacity:
        return "0 (the weights alone fill the memory)"
    return str(math.floor((capacity - weight_bytes) / per_sequence_bytes))


class PagedKV(BaseTechnique):
    id = "paged-kv"
    stage = "system"
    summary = "KV cache in fixed-size blocks allocated on demand: at most one partial block wasted per sequence."
    Params = PagedKVParams

    def param_space(self, workload, hardware):
        # vLLM's default; 32, which the paper also found good on both traces; LightLLM's one-token pages
        return tuple(PagedKVParams(block_size=b) for b in (VLLM_BLOCK_TOKENS, 32, 1))

    def applicability(self, workload, hardware, params):
        if not has_kv_cache(workload):
            return refuse("the model keeps no per-token KV cache (a recurrent state, or no architecture): "
                          "there is nothing to page")
        reserve = self._reserve(workload, params)
        if reserve is None:
            return refuse("the model lists no maximum context; give reserve_tokens (what a contiguous "
                          "allocator reserves per sequence)")
        needed = workload.prompt_tokens + workload.output_tokens
        if reserve < needed:
            return refuse(f"a contiguous reservation of {reserve} tokens cannot hold prompt + output = {needed} "
                          "tokens")
        return OK

    @staticmethod
    def _reserve(workload, params) -> int | None:
        return params.reserve_tokens or workload.architecture.max_position_embeddings

    def rewrite(self, workload, hardware, params):
        arch, b, batch = workload.architecture, params.block_size, workload.batch
        tokens = workload.prompt_tokens + workload.output_tokens
        reserve = self._reserve(workload, params)
        # the baseline holds exactly prompt + output tokens: bytes per token slot follow from it (so an
        # earlier KV quantization or eviction carries over)
        per_slot = workload.memory.kv_cache_bytes / batch / kv_slots(arch, tokens)
        exact, paged, contiguous = (kv_slots(arch, n, block=k) for n, k in ((tokens, 1), (tokens, b), (reserve, 1)))
        paged_bytes, contiguous_bytes = batch * paged * per_slot, batch * contiguous * per_slot
        memory = replace(workload.memory, kv_cache_bytes=paged_bytes)
        new = replace(workload, memory=memory, assumptions=workload.assumptions + (
            f"KV cache paged in {b}-token blocks (ceil(n/{b}) blocks per layer and sequence)",))
        # activations of the prefill grow with the batch too: they count per sequence beside the KV
        activation = workload.memory.activation_bytes / batch
        fits_paged = largest_batch(hardware.memory_capacity_bytes, workload.memory.weight_bytes,
                                   paged * per_slot + activation)
        fits_contiguous = largest_batch(hardware.memory_capacity_bytes, workload.memory.weight_bytes,
                                        contiguous * per_slot + activation)
        capacity = hardware.memory_capacity_bytes
        where = f"{capacity / 1e9:.1f} GB" if capacity else hardware.id
        return new, [
            f"KV in {b}-token blocks: a {tokens}-token sequence holds {paged / exact:.4f}x its exact KV "
            f"({100 * exact / paged:.1f}% of the allocated slots hold token states)",
            f"KV footprint {paged_bytes / 1e9:.3f} GB paged; a contiguous allocator reserving {reserve} tokens per "
            f"sequence needs {contiguous_bytes / 1e9:.3f} GB ({100 * exact / contiguous:.1f}% holding token states; "
            "vLLM measured 20.4-38.2% in earlier systems, arXiv 2309.06180 section 3)",
            f"largest batch in {where} (weights + KV + prefill activations): {fits_contiguous} with contiguous "
            f"{reserve}-token reservations, {fits_paged} paged",
        ]


PLUGIN = PagedKV()
