"""The typed hardware record the cost model and the planner read."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from llmeff.errors import InvalidInputError, LlmeffError


class MissingPeakError(LlmeffError):
    """The device has no published peak for a precision; llmeff never substitutes another."""


@dataclass(frozen=True)
class Efficiency:
    """How close a device gets to its datasheet: fractions of peak compute and bandwidth, launch cost.

    Time per operator = max(FLOPs / (peak x compute_fraction), bytes / (bandwidth x bandwidth_fraction))
    + kernel_overhead_s. The values come from published measurements (``source``) and are what the
    benchmark registry calibrates.
    """

    compute_fraction: float = 1.0
    bandwidth_fraction: float = 1.0
    kernel_overhead_s: float = 0.0
    source: str = "ideal roofline: no published efficiency measurement for this device"
    # Fixed costs an engine adds beyond its kernels (fitted by `llmeff bench calibrate`; 0 by default):
    # per forward pass (scheduling, sampling, host-device sync) and per request (tokenize, set up, return).
    step_overhead_s: float = 0.0
    request_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("compute_fraction", "bandwidth_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise InvalidInputError(f"must be in (0, 1], got {value}", field=name)
        for name in ("kernel_overhead_s", "step_overhead_s", "request_overhead_s"):
            if not getattr(self, name) >= 0:
                raise InvalidInputError(f"must not be negative, got {getattr(self, name)}", field=name)


IDEAL = Efficiency()


@dataclass(frozen=True)
class Processor:
    """One processor of a device: a system-on-chip has several sharing one memory."""

    name: str  # gpu, cpu, npu, tpu, accelerator
    peaks: dict[str, float]
    note: str = ""
    executes: dict[str, tuple[str, str]] = field(default_factory=dict)  # dtype -> (rate it runs at, source)


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
    npu_peak_dtype: str | None = None  # the precision the NPU figure is stated for, when a source says
    vector_fp32_flops: float | None = None
    interconnect: Link | None = None
    host_link: Link | None = None
    on_chip_sram_bytes: int | None = None
    tdp_watts: float | None = None
    release_year: int | None = None
    price_usd_per_hour: float | None = None
    features: tuple[str, ...] = ()
    efficiency: Efficiency = IDEAL
    # a precision without a published peak that runs at another one's rate: dtype -> (rate, source)
    executes: dict[str, tuple[str, str]] = field(default_factory=dict)
    extra_processors: dict[str, Processor] = field(default_factory=dict)  # a SoC's CPU cluster, DSP, ...
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

    @property
    def main_processor(self) -> str:
        """The processor ``peak_flops_dense`` describes (the GPU of a system-on-chip)."""
        return {"soc-gpu": "gpu", "npu": "gpu"}.get(self.kind, self.kind)

    @cached_property
    def _processors(self) -> dict[str, Processor]:
        return self.processors()

    @cached_property
    def roof_cache(self) -> dict:
        """Roofs already derived from this (immutable) spec, kept by llmeff.roofline.roof_for."""
        return {}

    def processors(self) -> dict[str, Processor]:
        """Each processor with its published peaks; they all share the device's memory bandwidth."""
        found = {self.main_processor: Processor(self.main_processor, dict(self.peak_flops_dense),
                                                executes=dict(self.executes))}
        if self.npu_peak_ops_per_s is not None:
            peaks = {self.npu_peak_dtype: self.npu_peak_ops_per_s} if self.npu_peak_dtype else {}
            note = "" if self.npu_peak_dtype else "no source read states the precision of the NPU figure"
            found["npu"] = Processor("npu", peaks, note)
        found.update(self.extra_processors)
        return found

    def default_processor(self) -> str:
        """The processor a user would pick: the main one if it has a published peak, else the NPU."""
        procs = self._processors
        if procs.get(self.main_processor) and procs[self.main_processor].peaks:
            return self.main_processor
        return "npu" if "npu" in procs else self.main_processor

    def processor_peak(self, processor: str, dtype: str) -> float:
        """The dense peak of ``processor`` for ``dtype``; a missing one names what is missing."""
        return self.processor_rate(processor, dtype)[0]

    def processor_rate(self, processor: str, dtype: str) -> tuple[float, str, str | None]:
        """(peak, the precision whose published rate it is, the source saying so when that differs)."""
        procs = self._processors
        if processor not in procs:
            raise InvalidInputError(
                f"hardware '{self.id}' has no processor '{processor}' (it has: {', '.join(procs) or 'none'})",
                field="processor",
            )
        proc = procs[processor]
        if dtype in proc.peaks:
            return proc.peaks[dtype], dtype, None
        if dtype in proc.executes:
            rate, source = proc.executes[dtype]
            return proc.peaks[rate], rate, source
        known = ", ".join(sorted(proc.peaks)) or "none"
        why = f" ({proc.note})" if proc.note else ""
        raise MissingPeakError(f"hardware '{self.id}' {processor} has no published {dtype} peak (known: {known}){why}")
