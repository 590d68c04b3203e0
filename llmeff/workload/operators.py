"""The operator table of a workload: one row per kernel, one column per cost term.

Decode cost depends on the context length ``c`` (the number of keys the new token attends to),
and every term is linear in it: a term is stored as ``base + per_context * min(c, cap)``. That lets
a whole generation be summed in closed form (see ``llmeff.roofline``) instead of step by step.
Prefill rows are evaluated at one fixed prompt length, so their ``per_context`` columns are 0.

Column-oriented, because the planner evaluates many candidates and every technique plugin is a
rewrite of whole columns (``weight_bytes`` scaled for the GEMM rows, say): numpy does that for all
rows at once, and ``OperatorTable.row`` gives a typed view of one row when a person wants it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np

from llmeff.workload.poly import Poly

if TYPE_CHECKING:
    from llmeff.architectures import Architecture
    from llmeff.techniques.contract import AppliedTechnique

# Columns of numbers, per row (per kernel, for the whole batch, per layer that runs it).
NUMERIC_COLUMNS = (
    "layers",  # how many layers run this kernel per forward pass (1 for embedding / LM head)
    "flops_base",
    "flops_per_context",
    "weight_bytes",
    "activation_bytes_base",
    "activation_bytes_per_context",
    "kv_bytes_base",
    "kv_bytes_per_context",
    "context_cap",  # inf, or the window / chunk where a layer's context stops growing
)


@dataclass(frozen=True)
class Operator:
    """A typed view of one row (what a person, a test or a plugin author reads)."""

    name: str
    kind: str  # gemm, attention, elementwise, norm, memory
    dtype: str  # the precision the arithmetic runs in: it picks the hardware peak
    resource: str  # the processor it runs on; plugins may move work elsewhere
    layers: int
    flops_base: float
    flops_per_context: float
    weight_bytes: float
    activation_bytes_base: float
    activation_bytes_per_context: float
    kv_bytes_base: float
    kv_bytes_per_context: float
    context_cap: float

    def _at(self, base: float, slope: float, context: float) -> float:
        return base + slope * min(context, self.context_cap)

    def flops_at(self, context: float) -> float:
        return self._at(self.flops_base, self.flops_per_context, context)

    def activation_bytes_at(self, context: float) -> float:
        return self._at(self.activation_bytes_base, self.activation_bytes_per_context, context)

    def kv_bytes_at(self, context: float) -> float:
        return self._at(self.kv_bytes_base, self.kv_bytes_per_context, context)

    def bytes_at(self, context: float) -> float:
        return self.weight_bytes + self.activation_bytes_at(context) + self.kv_bytes_at(context)


@dataclass(frozen=True, eq=False)
class OperatorTable:
    """Rows of kernels; text columns are tuples, numeric columns float arrays of the same length."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    dtypes: tuple[str, ...]
    resources: tuple[str, ...]
    layers: np.ndarray
    flops_base: np.ndarray
    flops_per_context: np.ndarray
    weight_bytes: np.ndarray
    activation_bytes_base: np.ndarray
    activation_bytes_per_context: np.ndarray
    kv_bytes_base: np.ndarray
    kv_bytes_per_context: np.ndarray
    context_cap: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def replace(self, **columns: object) -> "OperatorTable":
        """A new table with some columns replaced (the table itself is never modified)."""
        return replace(self, **columns)

    def row(self, index: int) -> Operator:
        values = {f.name: getattr(self, f.name)[index] for f in fields(self)}
        return Operator(
            name=values.pop("names"), kind=values.pop("kinds"), dtype=values.pop("dtypes"),
            resource=values.pop("resources"), layers=int(values.pop("layers")),
            **{k: float(v) for k, v in values.items()},
        )

    def rows(self) -> tuple[Operator, ...]:
        return tuple(self.row(i) for i in range(len(self)))

    def index(self, name: str) -> int:
        return self.names.index(name)


class TableBuilder:
    """Collects rows whose numbers may be polynomials in the request's sizes (see ``poly``)."""

    def __init__(self) -> None:
        self._text: list[tuple[str, str, str, str]] = []
        self._numbers: list[tuple[Poly | float, ...]] = []

    def add(self, name: str, kind: str, dtype: str, *, layers: int, flops: tuple = (0.0, 0.0),
            weight_bytes: Poly | float = 0.0, activation_bytes: tuple = (0.0, 0.0), kv_bytes: tuple = (0.0, 0.0),
            context_cap: float | None = None, resource: str = "compute") -> None:
        self._text.append((name, kind, dtype, resource))
        self._numbers.append((layers, *flops, weight_bytes, *activation_bytes, *kv_bytes,
                              np.inf if context_cap is None else context_cap))

    def cells(self) -> list[Poly]:
        return [Poly.lift(value) for row in self._numbers for value in row]

    def text_columns(self) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(column) for column in zip(*self._text))

    def __len__(self) -> int:
        return len(self._text)


@dataclass(frozen=True, eq=False)
class TableTemplate:
    """Operator tables (one per phase) with the request's sizes left as variables.

    All phases share one coefficient matrix, so a request's numbers become every table with a
    single matrix product.
    """

    texts: tuple[tuple[tuple[str, ...], ...], ...]  # per phase: names, kinds, dtypes, resources
    rows: tuple[int, ...]  # per phase
    monomials: tuple[tuple[str, ...], ...]
    coefficients: np.ndarray  # (monomials, all phases' rows x numeric columns)

    @staticmethod
    def compile(builders: list[TableBuilder]) -> "TableTemplate":
        cells = [cell for builder in builders for cell in builder.cells()]
        monomials = tuple(sorted({m for cell in cells for m in cell.terms} | {()}))
        position = {m: i for i, m in enumerate(monomials)}
        coefficients = np.zeros((len(monomials), len(cells)))
        for j, cell in enumerate(cells):
            for m, c in cell.terms.items():
                coefficients[position[m], j] = c
        return TableTemplate(tuple(b.text_columns() for b in builders), tuple(len(b) for b in builders),
                             monomials, coefficients)

    def evaluate(self, variables: dict[str, float]) -> list[OperatorTable]:
        values = np.array([math.prod([variables[v] for v in m]) for m in self.monomials])
        # inf (no context cap) only ever multiplies the constant monomial, so no inf x 0 arises
        flat = values @ self.coefficients
        tables, start, width = [], 0, len(NUMERIC_COLUMNS)
        for texts, rows in zip(self.texts, self.rows):
            matrix = flat[start:start + rows * width].reshape(rows, width)
            tables.append(OperatorTable(*texts, *matrix.T))
            start += rows * width
        return tables


@dataclass(frozen=True)
class Phase:
    """The operators of one forward pass of a phase, for the whole batch."""

    name: str  # "prefill" or "decode"
    table: OperatorTable
    tokens: int  # tokens processed per forward pass (batch x prompt for prefill, batch for decode)
    kernel_overhead_factor: float = 1.0  # share of the per-kernel launch cost paid (CUDA graphs lower it)
    overlap_resources: bool = False  # rows on different resources run concurrently (out-of-order scheduling)

    @property
    def operators(self) -> tuple[Operator, ...]:
        return self.table.rows()


@dataclass(frozen=True)
class MemoryFootprint:
    """Bytes resident in device memory during a request batch."""

    weight_bytes: float
    kv_cache_bytes: float  # at the end of the generation (prompt + output tokens)
    activation_bytes: float  # the largest transient activations of one prefill kernel

    @property
    def total_bytes(self) -> float:
        return self.weight_bytes + self.kv_cache_bytes + self.activation_bytes


@dataclass(frozen=True)
class Workload:
    """Everything the roofline needs: operators per phase, sizes and the memory footprint."""

    model: str
    batch: int
    prompt_tokens: int
    output_tokens: int
    weight_dtype: str
    activation_dtype: str
    kv_dtype: str
    prefill: Phase
    decode: Phase  # one step; evaluate its rows at a context length
    memory: MemoryFootprint
    kv_bytes_per_token: float  # whole model, one sequence
    assumptions: tuple[str, ...] = ()
    architecture: "Architecture | None" = None  # what the tables were built from (plugins read shapes here)
    decode_tokens_per_step: float = 1.0  # expected tokens each decode step yields per sequence (speculation)
    devices: int = 1  # devices one model instance spans; tables and memory are per device
    applied: tuple["AppliedTechnique", ...] = ()  # what technique plugins did to it, in order
