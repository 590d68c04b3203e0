"""The typed operator rows of a workload.

Decode cost depends on the context length ``c`` (the number of keys the new token attends to),
and every term is linear in it: an operator stores ``value = base + per_context * min(c, cap)``.
That lets a whole generation be summed in closed form (see ``llmeff.roofline``) instead of step
by step. Prefill rows are evaluated at one fixed prompt length, so their ``per_context`` is 0.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Linear:
    """``base + per_context * min(c, cap)``: a cost term that grows with the context length."""

    base: float = 0.0
    per_context: float = 0.0

    def at(self, context: float, cap: float | None = None) -> float:
        effective = context if cap is None else min(context, cap)
        return self.base + self.per_context * effective

    def scaled(self, factor: float) -> "Linear":
        return Linear(self.base * factor, self.per_context * factor)

    def __add__(self, other: "Linear") -> "Linear":
        return Linear(self.base + other.base, self.per_context + other.per_context)


ZERO = Linear()


@dataclass(frozen=True)
class Operator:
    """One kernel of one layer (``layers`` of them run per forward pass).

    ``flops`` and the three byte terms are per execution of the kernel for the whole batch.
    ``dtype`` is the precision the arithmetic runs in (it picks the hardware peak); weight-only
    quantization changes ``weight_bytes`` and leaves ``dtype`` alone.
    """

    name: str
    kind: str  # "gemm", "attention", "elementwise", "norm", "memory"
    layers: int  # how many layers run this kernel per forward pass (1 for embedding / LM head)
    flops: Linear
    weight_bytes: float
    activation_bytes: Linear
    kv_bytes: Linear
    dtype: str
    context_cap: float | None = None  # sliding-window layers stop growing at the window
    resource: str = "compute"  # the processor it runs on; plugins may move work elsewhere

    def bytes_at(self, context: float) -> float:
        return (
            self.weight_bytes
            + self.activation_bytes.at(context, self.context_cap)
            + self.kv_bytes.at(context, self.context_cap)
        )

    def flops_at(self, context: float) -> float:
        return self.flops.at(context, self.context_cap)

    def with_layers(self, layers: int) -> "Operator":
        return replace(self, layers=layers)


@dataclass(frozen=True)
class Phase:
    """The operators of one forward pass of a phase, for the whole batch."""

    name: str  # "prefill" or "decode"
    operators: tuple[Operator, ...]
    tokens: int  # tokens processed per forward pass (batch x prompt for prefill, batch for decode)


@dataclass(frozen=True)
class MemoryFootprint:
    """Bytes resident in device memory during a request batch."""

    weight_bytes: float
    kv_cache_bytes: float  # at the end of the generation (prompt + output tokens)
    activation_bytes: float  # peak transient activations of one layer during prefill

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
