"""The typed hardware record the cost model and the planner read."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmeff.errors import LlmeffError


class MissingPeakError(LlmeffError):
    """The device has no published peak for a precision; llmeff never substitutes another."""


@dataclass(frozen=True)
class Link:
    kind: str
    bandwidth_bytes_per_s: float | None
    note: str | None = None


@dataclass(frozen=True)
class HardwareSpec:
    """One device. Peaks are dense (no 2:4-sparsity figures); a missing peak is absent, not zero."""

    id: str
    name: str
    vendor: str
    kind: str
    memory_bandwidth_bytes_per_s: float
    memory_capacity_bytes: int | None = None
    memory_type: str | None = None
    peak_flops_dense: dict[str, float] = field(default_factory=dict)
    npu_peak_ops_per_s: float | None = None
    vector_fp32_flops: float | None = None
    interconnect: Link | None = None
    host_link: Link | None = None
    on_chip_sram_bytes: int | None = None
    tdp_watts: float | None = None
    release_year: int | None = None
    price_usd_per_hour: float | None = None
    features: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    notes: str | None = None
    source_file: str | None = None

    def peak(self, dtype: str) -> float:
        """The dense peak for ``dtype`` in FLOP/s (OP/s for integers); missing is an error."""
        try:
            return self.peak_flops_dense[dtype]
        except KeyError:
            known = ", ".join(sorted(self.peak_flops_dense)) or "none"
            raise MissingPeakError(
                f"hardware '{self.id}' has no published {dtype} peak (known: {known})"
            ) from None

    def ridge_point(self, dtype: str) -> float:
        """Arithmetic intensity (FLOP/byte) where the roofline turns from memory- to compute-bound."""
        return self.peak(dtype) / self.memory_bandwidth_bytes_per_s
