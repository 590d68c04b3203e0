"""Table helpers shared by the decoding-side plugins (KV eviction, sparse attention, early exit,
speculative and parallel decoding, prompt compression): new rows, row groups, rebuilds."""

from __future__ import annotations

import math

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.workload.build import SOFTMAX_FLOPS, build_workload
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable, Workload
from llmeff.workload.request import WorkloadRequest

# Rows a forward pass runs once, not once per layer (build.py's names).
PER_MODEL_ROWS = frozenset({"embedding", "final_norm", "lm_head"})
UNFUSED = ("qk_matmul", "softmax", "sv_matmul")


def require(value, field: str, what: str):
    """A parameter with no default that must be given: a one-line error naming it otherwise."""
    if value is None:
        raise InvalidInputError(f"required: {what}", field=field)
    return value


def in_range(value: float, low: float, high: float, field: str, *, low_open: bool = False) -> None:
    ok = (low < value if low_open else low <= value) and value <= high
    if isinstance(value, bool) or not ok:
        bound = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise InvalidInputError(f"must be in {bound}, got {value}", field=field)


def one_of(value: str, choices: tuple[str, ...], field: str) -> None:
    if value not in choices:
        raise InvalidInputError(f"must be one of {', '.join(choices)}, got '{value}'", field=field)


def per_layer(table: OperatorTable) -> np.ndarray:
    """Mask of the rows that run once per layer (everything but embedding, final norm, LM head)."""
    return np.array([name not in PER_MODEL_ROWS for name in table.names], dtype=bool)


def kind_mask(table: OperatorTable, kind: str) -> np.ndarray:
    return np.array([k == kind for k in table.kinds], dtype=bool)


def triples(table: OperatorTable) -> list[tuple[int, int, int]]:
    """Indices of every unfused (qk_matmul, softmax, sv_matmul) group: one per layer group."""
    names = table.names
    return [(i, i + 1, i + 2) for i in range(len(names) - 2) if tuple(names[i:i + 3]) == UNFUSED]


def prefill_score_bytes(table: OperatorTable) -> np.ndarray:
    """Per prefill row, the bytes of the score matrix it moves (the rest moves Q, K, V or the output).

    The unfused softmax reads and writes the scores once each, qk writes them and sv reads them
    (build.py), so each group's score bytes are the softmax's activation bytes over two.
    """
    out = np.zeros(len(table))
    for qk, sm, sv in triples(table):
        one_pass = table.activation_bytes_base[sm] / 2.0
        out[qk], out[sm], out[sv] = one_pass, 2.0 * one_pass, one_pass
    return out


def scores_of(table: OperatorTable, softmax_row: int) -> float:
    """Scores a softmax row normalises (build.py charges SOFTMAX_FLOPS per score)."""
    return float(table.flops_base[softmax_row] + table.flops_per_context[softmax_row]) / SOFTMAX_FLOPS


def new_rows(specs: list[dict], *, dtype: str, resource: str = "compute") -> OperatorTable:
    """A table from row dicts (name, kind, layers and any numeric column; the rest 0, no cap)."""
    numeric = {c: np.array([float(s.get(c, math.inf if c == "context_cap" else 0.0)) for s in specs])
               for c in NUMERIC_COLUMNS}
    return OperatorTable(names=tuple(s["name"] for s in specs), kinds=tuple(s["kind"] for s in specs),
                         dtypes=(dtype,) * len(specs), resources=(resource,) * len(specs), **numeric)


def concat(*tables: OperatorTable) -> OperatorTable:
    return OperatorTable(
        names=sum((t.names for t in tables), ()), kinds=sum((t.kinds for t in tables), ()),
        dtypes=sum((t.dtypes for t in tables), ()), resources=sum((t.resources for t in tables), ()),
        **{c: np.concatenate([getattr(t, c) for t in tables]) for c in NUMERIC_COLUMNS})


def take(table: OperatorTable, index) -> OperatorTable:
    """The rows at ``index``, in that order."""
    index = list(index)
    text = {c: tuple(getattr(table, c)[i] for i in index) for c in ("names", "kinds", "dtypes", "resources")}
    return OperatorTable(**text, **{c: getattr(table, c)[index] for c in NUMERIC_COLUMNS})


def renamed(table: OperatorTable, prefix: str) -> OperatorTable:
    return table.replace(names=tuple(prefix + name for name in table.names))


def scaled(table: OperatorTable, **factors) -> OperatorTable:
    """Every row's named columns multiplied by a factor (a number or a per-row array)."""
    return table.replace(**{c: getattr(table, c) * f for c, f in factors.items()})


def folded(table: OperatorTable, context: float, steps: int) -> OperatorTable:
    """``steps`` decode steps at one context as context-free rows (layers x steps launches).

    Exact in FLOPs and bytes for the mean context of a run of steps; in time while each row stays
    on one side of the roofline across those steps (GEMMs do not depend on the context; decode
    attention is memory-bound at every context).
    """
    x = np.minimum(float(context), table.context_cap)
    return table.replace(
        layers=table.layers * steps,
        flops_base=table.flops_base + table.flops_per_context * x, flops_per_context=np.zeros(len(table)),
        activation_bytes_base=table.activation_bytes_base + table.activation_bytes_per_context * x,
        activation_bytes_per_context=np.zeros(len(table)),
        kv_bytes_base=table.kv_bytes_base + table.kv_bytes_per_context * x,
        kv_bytes_per_context=np.zeros(len(table)), context_cap=np.full(len(table), np.inf))


def rebuild(workload: Workload, *, batch: int, prompt: int, output: int) -> Workload:
    """The baseline workload of the same model and precisions at other sizes (data-stage rewrites)."""
    request = WorkloadRequest(batch=batch, prompt_tokens=prompt, output_tokens=output,
                              weight_dtype=workload.weight_dtype, activation_dtype=workload.activation_dtype,
                              kv_dtype=workload.kv_dtype)
    return build_workload(workload.architecture, request, model=workload.model)


def kv_ratio(decode: OperatorTable, end_tokens, old_end_tokens) -> float:
    """KV footprint ratio after a rewrite, from the decode rows that read the cache.

    ``end_tokens(row)`` and ``old_end_tokens(row)`` give the tokens one sequence keeps in that
    row's layers at the end of the generation; rows weigh by their KV bytes per token and layers.
    """
    new = old = 0.0
    for i in np.flatnonzero(kind_mask(decode, "attention") & (decode.kv_bytes_per_context > 0)):
        weight = decode.kv_bytes_per_context[i] * decode.layers[i]
        new += weight * end_tokens(i)
        old += weight * old_end_tokens(i)
    return new / old if old else 1.0


__all__ = ["PER_MODEL_ROWS", "concat", "folded", "in_range", "kind_mask", "kv_ratio", "new_rows", "one_of",
           "per_layer", "prefill_score_bytes", "rebuild", "renamed", "require", "scaled", "scores_of", "take",
           "triples"]
