"""Sparse attention: a static block pattern (BigBird) or dynamic sparse prefill (MInference).

A pattern gives each query at most K keys, causal, counted at token granularity: query i computes
min(i, K) scores, so one head over a prompt of S computes N = K(K+1)/2 + (S - K) K scores (S > K)
instead of the S x S square the unfused baseline computes (build.py: causal masking is applied to
computed scores). With ``density`` D given instead, N = D S(S+1)/2 (D is the fraction of the causal
triangle's blocks computed, as MInference reports its sparsity).

- ``bigbird`` (arXiv 2007.14062): K = block_size x (window + global + random blocks). Prefill
  score FLOPs and score bytes scale by N / S^2 (an unfused block-sparse kernel still writes the
  scores it computes); a decoded token attends K keys, so decode attention rows are capped at K.
  Random blocks may land anywhere, so the whole KV cache stays resident (KV memory unchanged).
- ``dynamic`` (MInference, arXiv 2407.02490): prefill only, vertical-slash heads with K = vertical
  + slash (or a density). Its kernels are FlashAttention-style (scores stay on chip): score FLOPs
  scale by N / S^2 and the score traffic goes. Decode stays dense. The sparse index is estimated
  per head from the last ``estimate_queries`` queries against every key (a softmax over that
  strip, then column and diagonal sums: microsoft/MInference minference_forward.py, last_q = 64).

Q, K and V reads and the output writes do not change. Does not model: quality; block-granularity
edges (whole blocks computed where the token count is fractional); A-shape and block-sparse heads'
own estimates (every head is charged the vertical-slash estimate: an upper bound) and the top-k
sort of the estimate; the encoder-style BigBird global tokens that attend to everything (a decoder
cannot). The rows count only computed scores: fused-attention's causal halving, which assumes the
dense square, must not be applied on top (it would halve these FLOPs a second time).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._decode_helpers import (concat, in_range, kind_mask, new_rows, one_of,
                                                       prefill_score_bytes, scores_of, triples)
from llmeff.techniques.builtin._tables import prefill_activation_peak, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.build import SOFTMAX_FLOPS

PATTERNS = ("bigbird", "dynamic")


@dataclass(frozen=True)
class SparseAttentionParams(Params):
    pattern: str = "bigbird"
    # BigBird block sparse attention as 🤗 Transformers ships it: block_size 64, num_random_blocks 3,
    # 3 sliding and 2 global blocks per query block (BigBird configs; huggingface.co/blog/big-bird)
    block_size: int = 64
    window_blocks: int = 3
    global_blocks: int = 2
    random_blocks: int = 3
    # MInference's fallback vertical-slash setting (minference_forward.py: 1000 vertical, 6096 slash)
    vertical_size: int = 1000
    slash_size: int = 6096
    density: float | None = None  # dynamic only: fraction of the causal triangle computed
    estimate_queries: int = 64  # MInference last_q

    def validate(self) -> None:
        one_of(self.pattern, PATTERNS, "pattern")
        in_range(self.block_size, 1, 4096, "block_size")
        in_range(self.window_blocks, 1, 4096, "window_blocks")
        in_range(self.global_blocks, 0, 4096, "global_blocks")
        in_range(self.random_blocks, 0, 4096, "random_blocks")
        in_range(self.vertical_size, 1, 10**8, "vertical_size")
        in_range(self.slash_size, 1, 10**8, "slash_size")
        in_range(self.estimate_queries, 1, 10**6, "estimate_queries")
        if self.density is not None:
            if self.pattern != "dynamic":
                raise InvalidInputError("applies to pattern 'dynamic' only", field="density")
            in_range(self.density, 0.0, 1.0, "density", low_open=True)

    def keys_per_query(self) -> int:
        if self.pattern == "bigbird":
            return self.block_size * (self.window_blocks + self.global_blocks + self.random_blocks)
        return self.vertical_size + self.slash_size

    def computed_scores(self, s: int) -> float:
        """Scores one head computes over a causal prompt of ``s`` tokens."""
        if self.density is not None:
            return self.density * s * (s + 1) / 2.0
        k = self.keys_per_query()
        return s * (s + 1) / 2.0 if s <= k else k * (k + 1) / 2.0 + (s - k) * k


class SparseAttention(BaseTechnique):
    id = "sparse-attention"
    stage = "model"
    summary = "Attention over a static (BigBird) or dynamic (MInference) sparse pattern: score work follows density."
    Params = SparseAttentionParams

    def param_space(self, workload, hardware):
        return (SparseAttentionParams(), SparseAttentionParams(pattern="dynamic"))

    def applicability(self, workload, hardware, params):
        if not kind_mask(workload.decode.table, "attention").any():
            return refuse("the model has no attention (a state-space model)")
        if not triples(workload.prefill.table):
            return refuse("it rewrites the unfused attention rows: apply it before fused-attention (model stage)")
        s, t, k = workload.prompt_tokens, workload.output_tokens, params.keys_per_query()
        if params.density == 1.0:
            return refuse("density 1 computes every block: nothing is skipped")
        if params.pattern == "dynamic" and params.density is None and s <= k:
            return refuse(f"the prompt ({s} tokens) is within the pattern's {k} keys per query: nothing is skipped")
        if params.pattern == "bigbird" and s + t - 1 <= k:
            return refuse(f"the context never exceeds the pattern's {k} keys per query: nothing is skipped")
        return OK

    def rewrite(self, workload, hardware, params):
        b, s = workload.batch, workload.prompt_tokens
        heads = workload.architecture.num_attention_heads
        act = BYTES_PER_ELEMENT[workload.activation_dtype]
        prefill, decode = workload.prefill.table, workload.decode.table
        fraction = params.computed_scores(s) / (s * s)  # of the square the baseline rows compute
        keep_scores = fraction if params.pattern == "bigbird" else 0.0  # MInference's kernels are fused
        score_bytes = prefill_score_bytes(prefill)
        rows = np.zeros(len(prefill), dtype=bool)
        estimates = []
        for qk, sm, sv in triples(prefill):
            rows[[qk, sm, sv]] = True
            if params.pattern == "dynamic":
                scores = scores_of(prefill, sm)  # B x heads x S x S
                key_width = prefill.flops_base[qk] / (2.0 * scores)
                q = min(params.estimate_queries, s)
                estimates.append(dict(
                    name="sparse_index_estimate", kind="attention", layers=prefill.layers[qk],
                    flops_base=b * heads * q * s * (2.0 * key_width + SOFTMAX_FLOPS + 2.0),
                    activation_bytes_base=b * heads * q * (key_width + 4.0 * s) * act,
                    kv_bytes_base=prefill.kv_bytes_base[qk]))  # every prompt key read once
        new_prefill = prefill.replace(
            flops_base=np.where(rows, prefill.flops_base * fraction, prefill.flops_base),
            activation_bytes_base=prefill.activation_bytes_base - score_bytes * (1.0 - keep_scores))
        if estimates:
            new_prefill = concat(new_prefill, new_rows(estimates, dtype=workload.activation_dtype))
        k = params.keys_per_query()
        lines = [f"{params.pattern}: prefill attention computes {fraction:.4f} of the {s}x{s} score square "
                 + (f"(density {params.density} of the causal triangle)" if params.density is not None
                    else f"(at most {k} keys per query)"),
                 "score traffic scales with it" if params.pattern == "bigbird" else
                 "score traffic removed (fused sparse kernels); decode attention unchanged"]
        new_decode = decode
        if params.pattern == "bigbird":
            attention = kind_mask(decode, "attention")
            new_decode = decode.replace(context_cap=np.where(attention, np.minimum(decode.context_cap, k),
                                                             decode.context_cap))
            lines.append(f"decode attention reads at most {k} keys per sequence and layer; KV memory unchanged")
        else:
            lines.append(f"index estimate: last {min(params.estimate_queries, s)} queries against all {s} keys "
                         "per head and layer")
        memory = replace(workload.memory, activation_bytes=prefill_activation_peak(workload, new_prefill))
        note = (f"sparse attention ({params.pattern}): prefill attention rows count only the computed scores "
                "(no masked half for a causal skip to remove)")
        new = with_tables(workload, new_prefill, new_decode, memory=memory, assumptions=workload.assumptions + (note,))
        return new, lines


PLUGIN = SparseAttention()
