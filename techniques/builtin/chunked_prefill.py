"""Chunked prefill (SARATHI / Sarathi-Serve, DeepSpeed-FastGen's Dynamic SplitFuse, mllm-NPU's chunks).

The prompt of ``S`` tokens is prefilled in ``n = ceil(S / c)`` passes of ``c`` tokens (SARATHI, arXiv
2308.16369; Sarathi-Serve, arXiv 2403.02310). Every pass re-reads the weights, and the queries of
chunk ``i`` attend to the ``i c`` keys written so far (the growing KV cache read back). Static-graph
NPUs run a fixed chunk shape, so the last chunk is padded to ``c`` (``pad_last_chunk``; mllm-NPU /
llm.npu, arXiv 2407.05858, section 3.2, with its chunk-sharing graphs).

The prefill table is rewritten exactly: each row becomes one row per chunk shape (the full chunks, and
a shorter last chunk when ``S`` is not a multiple of ``c`` and there is no padding) whose ``layers``
counts the kernel runs (layers x chunks, so launch overheads count every run) and whose terms are one
chunk's, summed in closed form: the keys of chunks 1..m average ``c (m + 1) / 2``, and every term of
an attention row is affine in its keys. Unfused attention computes each ``c x i c`` score rectangle;
fused attention with causal skipping computes the unmasked part only (with no padding that adds up to
the unchunked triangle: chunking then costs only KV re-reads). The final norm and LM head run once.

Not modelled: the decode tokens SARATHI piggybacks on each chunk (they ride on the chunk's weight read;
that needs the mixed batch of other requests, i.e. a serving simulator), the bound on time between
tokens that motivates chunking, NPU graph-build time (a one-off per chunk size), and the memory the
chunk-sharing graphs save. Apply chunked-prefill after fused-attention: fused-attention's causal
factor assumes one square prompt pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.hardware.capabilities import capabilities
from llmeff.techniques.builtin._serving_helpers import Passes, has_kv_cache, prefill_split_by, split_prefill
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

# Sarathi-Serve's token budgets (arXiv 2403.02310, Fig. 12); vLLM's performance docs: "512 is the default
# max_num_batched_tokens for chunked prefill". A budget also holds the decode tokens riding along.
SERVING_CHUNKS = (512, 2048)
NPU_CHUNK = 256  # llm.npu's chunk length on the Xiaomi 14 (arXiv 2407.05858, section 3.2 and Fig. 8)
MAX_CHUNK = 1 << 20  # a validation bound far above any model's context


@dataclass(frozen=True)
class ChunkedPrefillParams(Params):
    chunk_size: int = SERVING_CHUNKS[0]
    pad_last_chunk: bool = False  # static-shape NPUs pad the last chunk to chunk_size

    def validate(self) -> None:
        if not 1 <= self.chunk_size <= MAX_CHUNK:
            raise InvalidInputError(f"must be between 1 and {MAX_CHUNK} tokens, got {self.chunk_size}",
                                    field="chunk_size")


def chunk_passes(prompt: int, chunk: int, pad: bool) -> tuple[Passes, ...]:
    """The prefill's chunk shapes: full chunks (keys 1c..mc) and, unpadded, a shorter last one."""
    n = math.ceil(prompt / chunk)
    last = prompt - (n - 1) * chunk
    if pad or last == chunk:
        return (Passes(n, chunk, chunk * (n + 1) / 2, n * chunk),)
    full = () if n == 1 else (Passes(n - 1, chunk, chunk * n / 2, (n - 1) * chunk),)
    return full + (Passes(1, last, prompt, prompt),)


class ChunkedPrefill(BaseTechnique):
    id = "chunked-prefill"
    stage = "system"
    summary = "Prefill in chunks of c tokens: each re-reads the weights and the KV cache written so far."
    Params = ChunkedPrefillParams

    def param_space(self, workload, hardware):
        space = [ChunkedPrefillParams(chunk_size=c) for c in SERVING_CHUNKS]
        if "npu" in capabilities(hardware):
            space.append(ChunkedPrefillParams(chunk_size=NPU_CHUNK, pad_last_chunk=True))
        return tuple(space)

    def applicability(self, workload, hardware, params):
        if not has_kv_cache(workload):
            return refuse("the model has no attention KV cache: a recurrent state carried between chunks is "
                          "not modelled")
        if prefill_split_by(workload):
            return refuse(f"{prefill_split_by(workload)} already split the prefill: stacking it with {self.id} "
                          "is not modelled")
        if not params.pad_last_chunk and params.chunk_size >= workload.prompt_tokens:
            return refuse(f"a chunk of {params.chunk_size} tokens holds the whole {workload.prompt_tokens}-token "
                          "prompt: that is the unchunked prefill")
        return OK

    def rewrite(self, workload, hardware, params):
        s, c = workload.prompt_tokens, params.chunk_size
        passes = chunk_passes(s, c, params.pad_last_chunk)
        prefill, peak = split_prefill(workload, passes)
        chunks = sum(p.count for p in passes)
        computed = sum(p.count * p.queries for p in passes)
        before = workload.memory.activation_bytes
        new = replace(workload, prefill=replace(workload.prefill, table=prefill, tokens=workload.batch * computed),
                      memory=replace(workload.memory, activation_bytes=peak),
                      assumptions=workload.assumptions + (f"prefill in {chunks} chunks of {c} tokens",))
        weights = lambda table: float((table.weight_bytes * table.layers).sum())  # noqa: E731
        keys = sum(p.count * p.mean_keys for p in passes)
        lines = [
            f"prefill of {s} tokens in {chunks} chunks of {c}"
            + (f", the last padded from {s - (chunks - 1) * c}: {computed - s} pad tokens computed"
               if computed > s else ""),
            f"weights re-read by each of the {chunks} chunks: weight traffic "
            f"{weights(workload.prefill.table) / 1e9:.2f} GB -> {weights(prefill) / 1e9:.2f} GB per prefill",
            f"attention reads {keys / s:.2f}x the prompt's KV (chunk i attends to i x {c} keys); "
            f"peak prefill activation {before / 1e6:.1f} MB -> {peak / 1e6:.1f} MB",
        ]
        return new, lines


PLUGIN = ChunkedPrefill()
