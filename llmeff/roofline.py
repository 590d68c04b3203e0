"""The roofline: time of each operator on a device, and the totals a user asks about.

An operator takes ``max(FLOPs / (peak x compute efficiency), bytes / (bandwidth x bandwidth
efficiency)) + kernel overhead`` per layer that runs it; the pure roofline bound (efficiencies 1,
no overhead) is reported beside it. Decode over a whole generation is summed in closed form: an
operator's FLOPs and bytes are linear in the context length, so the maximum of the two lines
changes side at most once (plus once more where a sliding window caps the context).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmeff.errors import InvalidInputError
from llmeff.hardware.specs import IDEAL, Efficiency, HardwareSpec
from llmeff.workload.operators import MemoryFootprint, Operator, Phase, Workload


@dataclass(frozen=True)
class Roof:
    """The two roofs an analysis runs under, with the efficiencies applied."""

    peak_flops: float
    bandwidth_bytes_per_s: float
    efficiency: Efficiency
    processor: str = "gpu"

    @property
    def effective_flops(self) -> float:
        return self.peak_flops * self.efficiency.compute_fraction

    @property
    def effective_bandwidth(self) -> float:
        return self.bandwidth_bytes_per_s * self.efficiency.bandwidth_fraction

    @property
    def ridge_point(self) -> float:
        """FLOP per byte at which the pure roofline turns from memory- to compute-bound."""
        return self.peak_flops / self.bandwidth_bytes_per_s


@dataclass(frozen=True)
class OperatorEstimate:
    """One operator over all the layers that run it, for one forward pass (or a decode average)."""

    name: str
    kind: str
    layers: int
    flops: float
    weight_bytes: float
    activation_bytes: float
    kv_bytes: float
    arithmetic_intensity: float  # FLOP per byte moved
    bound: str  # "compute" or "memory"
    roofline_time_s: float  # pure bound, all layers
    time_s: float  # with efficiencies and kernel overheads, all layers

    @property
    def bytes(self) -> float:
        return self.weight_bytes + self.activation_bytes + self.kv_bytes


@dataclass(frozen=True)
class PhaseEstimate:
    name: str
    context: str  # e.g. "prompt 1024" or "average over contexts 1025..1280"
    operators: tuple[OperatorEstimate, ...]

    @property
    def flops(self) -> float:
        return sum(op.flops for op in self.operators)

    @property
    def bytes(self) -> float:
        return sum(op.bytes for op in self.operators)

    @property
    def time_s(self) -> float:
        return sum(op.time_s for op in self.operators)

    @property
    def roofline_time_s(self) -> float:
        return sum(op.roofline_time_s for op in self.operators)

    def dominant(self, count: int = 3) -> tuple[OperatorEstimate, ...]:
        return tuple(sorted(self.operators, key=lambda op: -op.time_s)[:count])


@dataclass(frozen=True)
class MemoryVerdict:
    footprint: MemoryFootprint
    capacity_bytes: float | None

    @property
    def fits(self) -> bool | None:
        return None if self.capacity_bytes is None else self.footprint.total_bytes <= self.capacity_bytes


@dataclass(frozen=True)
class Estimate:
    """The cost of one request batch on one device."""

    workload: Workload
    hardware_id: str
    dtype: str  # the compute precision, which picked the peak
    roof: Roof
    prefill: PhaseEstimate
    decode: PhaseEstimate  # averaged over every decode step of the generation
    ttft_s: float
    tpot_s: float  # mean time per output token after the first
    e2e_latency_s: float
    roofline_ttft_s: float
    roofline_tpot_s: float
    memory: MemoryVerdict

    @property
    def output_tokens_per_s(self) -> float:
        """Generated tokens per second for the whole batch, over the end-to-end latency."""
        return self.workload.batch * self.workload.output_tokens / self.e2e_latency_s

    @property
    def decode_tokens_per_s(self) -> float:
        return self.workload.batch / self.tpot_s if self.tpot_s else math.inf


def roof_for(spec: HardwareSpec, dtype: str, *, processor: str | None = None,
             efficiency: Efficiency | None = None) -> Roof:
    """The roofs for compute in ``dtype`` on a processor of ``spec`` (default: the one a user would pick).

    A processor with no published peak for ``dtype`` is an error naming what is missing: llmeff
    never substitutes another precision's peak.
    """
    processor = processor or spec.default_processor()
    return Roof(
        peak_flops=spec.processor_peak(processor, dtype),
        bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s,
        efficiency=spec.efficiency if efficiency is None else efficiency,
        processor=processor,
    )


def estimate(workload: Workload, spec: HardwareSpec, *, processor: str | None = None,
             efficiency: Efficiency | None = None) -> Estimate:
    """Prefill, decode over the whole generation, and the totals, for ``workload`` on ``spec``."""
    roof = roof_for(spec, workload.activation_dtype, processor=processor, efficiency=efficiency)
    prefill = _phase_at(workload.prefill, roof, context=workload.prompt_tokens,
                        label=f"prompt of {workload.prompt_tokens} tokens")
    # Prefill yields the first output token; decode step j attends to prompt + j keys.
    first, last = workload.prompt_tokens + 1, workload.prompt_tokens + workload.output_tokens - 1
    steps = max(0, last - first + 1)
    decode = _phase_average(workload.decode, roof, first, last) if steps else _phase_at(
        workload.decode, roof, context=first, label=f"context {first} (no decode step: one output token)")
    decode_total = decode.time_s * steps
    return Estimate(
        workload=workload,
        hardware_id=spec.id,
        dtype=workload.activation_dtype,
        roof=roof,
        prefill=prefill,
        decode=decode,
        ttft_s=prefill.time_s,
        tpot_s=decode.time_s if steps else 0.0,
        e2e_latency_s=prefill.time_s + decode_total,
        roofline_ttft_s=prefill.roofline_time_s,
        roofline_tpot_s=decode.roofline_time_s if steps else 0.0,
        memory=MemoryVerdict(workload.memory, spec.memory_capacity_bytes),
    )


def decode_at(workload: Workload, spec: HardwareSpec, context: int, *, processor: str | None = None,
              efficiency: Efficiency | None = None) -> PhaseEstimate:
    """One decode step attending to ``context`` keys."""
    if context < 1:
        raise InvalidInputError(f"must be at least 1, got {context}", field="context")
    roof = roof_for(spec, workload.activation_dtype, processor=processor, efficiency=efficiency)
    return _phase_at(workload.decode, roof, context=context, label=f"context {context}")


def _operator_estimate(op: Operator, roof: Roof, flops: float, weight: float, act: float, kv: float,
                       time_s: float, roofline_s: float) -> OperatorEstimate:
    moved = weight + act + kv
    intensity = flops / moved if moved else math.inf
    return OperatorEstimate(
        name=op.name, kind=op.kind, layers=op.layers, flops=flops, weight_bytes=weight, activation_bytes=act,
        kv_bytes=kv, arithmetic_intensity=intensity,
        bound="compute" if intensity >= roof.ridge_point else "memory",
        roofline_time_s=roofline_s, time_s=time_s,
    )


def _phase_at(phase: Phase, roof: Roof, *, context: int, label: str) -> PhaseEstimate:
    estimates = []
    for op in phase.operators:
        flops = op.flops_at(context) * op.layers
        weight = op.weight_bytes * op.layers
        act = op.activation_bytes.at(context, op.context_cap) * op.layers
        kv = op.kv_bytes.at(context, op.context_cap) * op.layers
        moved = weight + act + kv
        pure = max(flops / roof.peak_flops, moved / roof.bandwidth_bytes_per_s)
        real = max(flops / roof.effective_flops, moved / roof.effective_bandwidth)
        real += op.layers * roof.efficiency.kernel_overhead_s
        estimates.append(_operator_estimate(op, roof, flops, weight, act, kv, real, pure))
    return PhaseEstimate(phase.name, label, tuple(estimates))


def _phase_average(phase: Phase, roof: Roof, first: int, last: int) -> PhaseEstimate:
    """Every operator averaged over the decode steps with contexts ``first..last`` (closed form)."""
    steps = last - first + 1
    estimates = []
    for op in phase.operators:
        mean = lambda term: _sum_linear(term.base, term.per_context, first, last, op.context_cap) / steps  # noqa: E731
        flops = mean(op.flops) * op.layers
        act = mean(op.activation_bytes) * op.layers
        kv = mean(op.kv_bytes) * op.layers
        weight = op.weight_bytes * op.layers
        moved_base = op.weight_bytes + op.activation_bytes.base + op.kv_bytes.base
        moved_slope = op.activation_bytes.per_context + op.kv_bytes.per_context

        def total_time(flops_rate: float, byte_rate: float) -> float:
            return _sum_max(op.flops.base / flops_rate, op.flops.per_context / flops_rate,
                            moved_base / byte_rate, moved_slope / byte_rate, first, last, op.context_cap)

        pure = total_time(roof.peak_flops, roof.bandwidth_bytes_per_s) * op.layers / steps
        real = total_time(roof.effective_flops, roof.effective_bandwidth) * op.layers / steps
        real += op.layers * roof.efficiency.kernel_overhead_s
        estimates.append(_operator_estimate(op, roof, flops, weight, act, kv, real, pure))
    return PhaseEstimate(phase.name, f"average over contexts {first}..{last}", tuple(estimates))


def _sum_linear(base: float, slope: float, first: int, last: int, cap: float | None = None) -> float:
    """Sum of ``base + slope * min(c, cap)`` for integer c in first..last."""
    if cap is not None and last > cap:
        below = _sum_linear(base, slope, first, min(last, int(cap)), None) if first <= cap else 0.0
        flat_from = max(first, int(cap) + 1)
        return below + (last - flat_from + 1) * (base + slope * cap)
    count = last - first + 1
    return count * base + slope * (first + last) * count / 2.0


def _sum_max(a0: float, a1: float, b0: float, b1: float, first: int, last: int, cap: float | None) -> float:
    """Sum over integer c in first..last of max(a0 + a1 x, b0 + b1 x), x = min(c, cap): exact."""
    if first > last:
        return 0.0
    if cap is not None and last > cap:
        below = _sum_max(a0, a1, b0, b1, first, min(last, int(cap)), None) if first <= cap else 0.0
        flat_from = max(first, int(cap) + 1)
        return below + (last - flat_from + 1) * max(a0 + a1 * cap, b0 + b1 * cap)
    if a1 == b1:
        return _sum_linear(max(a0, b0), a1, first, last)
    crossing = (b0 - a0) / (a1 - b1)  # where the two lines meet
    split = math.floor(crossing)
    if split < first or split >= last:  # one line wins over the whole range
        mid = (first + last) / 2.0
        if a0 + a1 * mid >= b0 + b1 * mid:
            return _sum_linear(a0, a1, first, last)
        return _sum_linear(b0, b1, first, last)
    return _sum_max(a0, a1, b0, b1, first, split, None) + _sum_max(a0, a1, b0, b1, split + 1, last, None)
