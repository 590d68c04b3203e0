"""Shared by the serving plugins (paged-kv, chunked-prefill, prefix-caching): KV slots per sequence,
expected MoE experts, and the rewrite of a prefill into passes that each compute part of the prompt.

A prefill pass over ``q`` new tokens of each sequence that attend to ``k`` keys (the KV cache written
so far plus their own) costs, relative to the baseline table's single pass (``q = k = S``):
- per-token rows (GEMMs, norms, element-wise, link transfers): FLOPs, activations and KV writes scale
  with ``q / S``; the weights are read again in every pass (first principles: a GEMM streams its
  weight once per call);
- the embedding gathers only its rows (weight bytes scale with ``q / S`` too);
- routed MoE experts: the pass reads the experts its ``B q`` tokens reach (uniform routing, as
  ``llmeff.workload.build`` counts them);
- attention reads the ``k`` cached keys and values (``k / S``); unfused kernels compute the whole
  ``q x k`` score rectangle and move it through memory; fused ones with causal skipping compute only
  the unmasked part ``q k - q (q - 1) / 2`` (the diagonal block is a triangle);
- the final norm and the LM head run once, in the last pass (logits of the last position only).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from dataclasses import dataclass

import numpy as np

from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable, Workload

LOGITS_ROWS = ("final_norm", "lm_head")
# how many times the unfused kernels move each score through memory (llmeff.workload.build: qk writes
# the scores, softmax reads and writes them, sv reads them)
SCORE_TRAFFIC = {"qk_matmul": 1, "softmax": 2, "sv_matmul": 1}


@lru_cache(maxsize=256)
def attention_caps(arch) -> tuple[float, ...]:
    """Per attention layer, the most tokens it keeps (sliding window or attention chunk), else inf."""
    window, chunked = set(arch.sliding_window_layers), set(arch.chunked_attention_layers)
    caps = []
    for index in arch.attention_layer_indices:
        if index in window and arch.sliding_window:
            caps.append(float(arch.sliding_window))
        elif index in chunked and arch.attention_chunk_size:
            caps.append(float(arch.attention_chunk_size))
        else:
            caps.append(math.inf)
    return tuple(caps)


def kv_slots(arch, tokens: float, *, block: int = 1) -> float:
    """Token slots (summed over attention layers) one sequence of ``tokens`` holds, in blocks of ``block``."""
    return float(sum(count * math.ceil(min(tokens, cap) / block) * block for cap, count in _cap_counts(arch)))


@lru_cache(maxsize=256)
def _cap_counts(arch) -> tuple[tuple[float, int], ...]:
    """attention_caps as (cap, how many layers have it): layers with one cap hold the same slots."""
    return tuple(Counter(attention_caps(arch)).items())


def touched_experts(arch, tokens: float) -> float:
    """Expected distinct experts ``tokens`` token-choices reach under uniform routing (as build.py counts)."""
    if not arch.moe:
        return 0.0
    experts, k = arch.moe.num_experts, arch.moe.experts_per_token
    return experts * (1.0 - (1.0 - k / experts) ** tokens)


def has_kv_cache(workload: Workload) -> bool:
    arch = workload.architecture
    return arch is not None and bool(arch.attention_layer_indices)


PREFILL_SPLITTERS = ("chunked-prefill", "prefix-caching")


def prefill_split_by(workload: Workload) -> str | None:
    """The plugin that already turned the prefill into passes over part of the prompt, if any.

    Those tables no longer describe one pass over the whole prompt, which is what ``split_prefill``
    starts from, so the two plugins do not stack (their combination is not modelled).
    """
    return next((a.id for a in workload.applied if a.id in PREFILL_SPLITTERS), None)


def causal_skip(workload: Workload) -> bool:
    """Whether the fused-attention rows skip masked blocks (as recorded when the fused-attention plugin ran)."""
    for record in workload.applied:
        if record.id == "fused-attention":
            return bool(record.params.get("causal_skip", True))
    return False  # a fused row of unknown origin: charge the full rectangle


@dataclass(frozen=True)
class Passes:
    """``count`` prefill passes of ``queries`` new tokens per sequence; their keys average ``mean_keys``."""

    count: int
    queries: int
    mean_keys: float
    max_keys: float


def split_prefill(workload: Workload, passes: Sequence[Passes]) -> tuple[OperatorTable, float]:
    """The prefill table as the given passes (one row per row and pass shape, ``layers`` x ``count``
    kernel runs with per-pass values), and the largest activation one kernel of one pass moves."""
    t, s, batch = workload.prefill.table, workload.prompt_tokens, workload.batch
    names, kinds = t.names, t.kinds
    logits = np.array([n in LOGITS_ROWS for n in names])
    attention = np.array([k == "attention" for k in kinds])
    unfused = np.array([n in SCORE_TRAFFIC for n in names])
    embedding = np.array([n == "embedding" for n in names])
    expert = np.array([k == "gemm" and n.startswith("expert_") for n, k in zip(names, kinds)])
    scores = _score_bytes(t)  # per layer, of the baseline S x S scores, on the unfused rows
    skip = causal_skip(workload)
    arch = workload.architecture

    def area(q: float, k: float) -> float:
        return q * k - q * (q - 1) / 2 if skip else q * k

    def columns(q: float, k: float) -> dict[str, np.ndarray]:
        fq, fk = q / s, k / s
        fqk = q * k / (s * s)
        experts = touched_experts(arch, batch * q) / touched_experts(arch, batch * s) if expert.any() else 1.0
        flops = np.where(unfused, fqk, np.where(attention, area(q, k) / area(s, s), fq))
        weight = np.where(embedding, fq, np.where(expert, experts, 1.0))
        kv = np.where(attention, fk, fq)
        out = {"weight_bytes": t.weight_bytes * weight}
        for column, factor in (("flops", flops), ("kv_bytes", kv)):
            out[column + "_base"] = getattr(t, column + "_base") * factor
            out[column + "_per_context"] = getattr(t, column + "_per_context") * factor
        act = t.activation_bytes_base
        out["activation_bytes_base"] = np.where(unfused, scores * fqk + (act - scores) * fq, act * fq)
        out["activation_bytes_per_context"] = t.activation_bytes_per_context * fq
        return out

    pieces, peak = [], 0.0
    for number, group in enumerate(passes):
        last = number == len(passes) - 1
        keep = np.flatnonzero(~logits | last)
        values = columns(group.queries, group.mean_keys)
        # logits rows run once, unchanged; every other row runs count times per layer
        values = {c: np.where(logits, getattr(t, c), v)[keep] for c, v in values.items()}
        values["layers"] = (t.layers * np.where(logits, 1, group.count))[keep]
        values["context_cap"] = t.context_cap[keep]
        text = {c: tuple(getattr(t, c)[i] for i in keep) for c in ("names", "kinds", "dtypes", "resources")}
        pieces.append((text, values))
        worst = columns(group.queries, group.max_keys)["activation_bytes_base"]
        peak = max(peak, float(np.where(logits, t.activation_bytes_base, worst).max()))
    text = {c: sum((p[0][c] for p in pieces), ()) for c in ("names", "kinds", "dtypes", "resources")}
    numeric = {c: np.concatenate([p[1][c] for p in pieces]) for c in NUMERIC_COLUMNS}
    return OperatorTable(**text, **numeric), peak


def _score_bytes(t: OperatorTable) -> np.ndarray:
    """Per row, the score-matrix bytes it moves (unfused qk/softmax/sv triples; 0 elsewhere).

    Read off the softmax row, which moves nothing but the scores (read and written once each), so the
    figure follows whatever earlier plugins did to the table (tensor parallelism divides it, say).
    """
    out = np.zeros(len(t))
    for i in range(len(t) - 2):
        if t.names[i:i + 3] == tuple(SCORE_TRAFFIC):
            unit = t.activation_bytes_base[i + 1] / SCORE_TRAFFIC["softmax"]
            for j, name in enumerate(SCORE_TRAFFIC):
                out[i + j] = unit * SCORE_TRAFFIC[name]
    return out


__all__ = ["LOGITS_ROWS", "Passes", "attention_caps", "causal_skip", "has_kv_cache", "kv_slots", "prefill_split_by",
           "split_prefill", "touched_experts"]
