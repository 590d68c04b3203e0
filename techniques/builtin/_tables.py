"""Small helpers the built-in plugins share for rewriting operator tables."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from llmeff.workload.operators import OperatorTable, Workload


def rows_where(table: OperatorTable, predicate) -> np.ndarray:
    """A boolean mask over the rows: ``predicate(name, kind)`` for each."""
    return np.array([predicate(name, kind) for name, kind in zip(table.names, table.kinds)], dtype=bool)


def scale_rows(table: OperatorTable, mask: np.ndarray, **factors: float) -> OperatorTable:
    """Multiply the named numeric columns by a factor on the masked rows (a new table)."""
    return table.replace(**{column: np.where(mask, getattr(table, column) * factor, getattr(table, column))
                            for column, factor in factors.items()})


def with_tables(workload: Workload, prefill: OperatorTable, decode: OperatorTable, **changes) -> Workload:
    return replace(workload, prefill=replace(workload.prefill, table=prefill),
                   decode=replace(workload.decode, table=decode), **changes)


def map_phases(workload: Workload, rewrite) -> Workload:
    """Apply ``rewrite(phase) -> OperatorTable`` to both phases."""
    return with_tables(workload, rewrite(workload.prefill), rewrite(workload.decode))


def prefill_activation_peak(workload: Workload, prefill: OperatorTable) -> float:
    """The largest transient activations of one prefill kernel (the memory footprint's activation term)."""
    return float((prefill.activation_bytes_base + prefill.activation_bytes_per_context * workload.prompt_tokens).max())


__all__ = ["map_phases", "prefill_activation_peak", "rows_where", "scale_rows", "with_tables"]
