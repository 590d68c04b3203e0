"""The roofline: time of each operator on a device, and the totals a user asks about.

An operator takes ``max(FLOPs / (peak x compute efficiency), bytes / (bandwidth x bandwidth
efficiency)) + kernel overhead`` per layer that runs it, a forward pass adds the engine's step
overhead and a request its request overhead (both 0 unless a calibration fitted them); the pure roofline bound (efficiencies 1,
no overhead) is reported beside it. Decode over a whole generation is summed in closed form: an
operator's FLOPs and bytes are linear in the context length, so the maximum of the two lines
changes side at most once (plus once more where a sliding window caps the context).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.hardware.specs import Efficiency, HardwareSpec
from llmeff.workload.operators import MemoryFootprint, OperatorTable, Phase, Workload


@dataclass(frozen=True)
class Roof:
    """The two roofs an analysis runs under, with the efficiencies applied."""

    peak_flops: float
    bandwidth_bytes_per_s: float
    efficiency: Efficiency
    processor: str = "gpu"
    peak_dtype: str = ""  # the precision whose published peak this is (differs when a rule says so)
    peak_source: str | None = None  # the source of that rule
    hardware: HardwareSpec | None = None  # for rows a plugin moved to another precision, processor or link
    dtype: str = ""  # the analysis's compute precision (rows in another one look their peak up)

    @property
    def effective_flops(self) -> float:
        return self.peak_flops * self.efficiency.compute_fraction

    @property
    def effective_bandwidth(self) -> float:
        return self.bandwidth_bytes_per_s * self.efficiency.bandwidth_fraction

    def row_rates(self, table: OperatorTable) -> tuple:
        """(pure FLOP/s, pure bytes/s, effective FLOP/s, effective bytes/s), each a scalar or per row.

        Scalars when every row runs in the analysis's precision on its processor (the usual case);
        otherwise each row's rate comes from its own precision and resource: another processor of
        the device (same memory), or a link (interconnect, host link) whose bytes carry no FLOPs.
        """
        if set(table.dtypes) <= {self.dtype} and set(table.resources) <= {"compute"}:
            return self.peak_flops, self.bandwidth_bytes_per_s, self.effective_flops, self.effective_bandwidth
        key = (table.dtypes, table.resources)
        if key not in self._rates:  # the planner meets the same row layout thousands of times
            self._rates[key] = self._rates_for(table)
        return self._rates[key]

    @cached_property
    def _rates(self) -> dict:
        return {}

    def _rates_for(self, table: OperatorTable) -> tuple:
        peaks, bandwidths, compute_fraction, bandwidth_fraction = [], [], [], []
        for dtype, resource in zip(table.dtypes, table.resources):
            if resource in LINKS:
                peaks.append(math.inf)
                bandwidths.append(link_bandwidth(self.hardware, resource))
                compute_fraction.append(1.0)
                bandwidth_fraction.append(1.0)  # no published link-efficiency measurement: nominal
                continue
            processor = self.processor if resource == "compute" else resource
            peaks.append(self.hardware.processor_rate(processor, dtype)[0])
            bandwidths.append(self.bandwidth_bytes_per_s)
            compute_fraction.append(self.efficiency.compute_fraction)
            bandwidth_fraction.append(self.efficiency.bandwidth_fraction)
        peak, bandwidth = np.array(peaks), np.array(bandwidths)
        return peak, bandwidth, peak * np.array(compute_fraction), bandwidth * np.array(bandwidth_fraction)

    @property
    def ridge_point(self) -> float:
        """FLOP per byte at which the pure roofline turns from memory- to compute-bound."""
        return self.peak_flops / self.bandwidth_bytes_per_s


LINKS = ("interconnect", "host-link")


def link_bandwidth(spec: HardwareSpec, resource: str) -> float:
    """Bytes per second one way over a device's link; a missing link is an error naming it."""
    link = spec.interconnect if resource == "interconnect" else spec.host_link
    if link is None or link.bandwidth_bytes_per_s is None:
        raise InvalidInputError(f"hardware '{spec.id}' lists no {resource} bandwidth", field="resource")
    # the sheet records what the vendor prints; a figure it calls bidirectional is the sum of both ways
    bidirectional = "bidirectional" in (link.note or "")
    return link.bandwidth_bytes_per_s / 2 if bidirectional else link.bandwidth_bytes_per_s


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


@dataclass(frozen=True, eq=False)
class PhaseEstimate:
    """Per-operator results of one phase as columns (all layers of each row), with typed row views."""

    name: str
    context: str  # e.g. "prompt of 1024 tokens" or "average over contexts 1025..1280"
    table: OperatorTable
    ridge_point: float
    flops_column: np.ndarray
    weight_bytes_column: np.ndarray
    activation_bytes_column: np.ndarray
    kv_bytes_column: np.ndarray
    roofline_time_column: np.ndarray
    time_column: np.ndarray
    total_roofline_time_s: float  # sums of the two time columns, computed once
    total_time_s: float

    @cached_property
    def flops(self) -> float:
        return float(self.flops_column.sum())

    @cached_property
    def bytes(self) -> float:
        return float((self.weight_bytes_column + self.activation_bytes_column + self.kv_bytes_column).sum())

    @property
    def time_s(self) -> float:
        return self.total_time_s

    @property
    def roofline_time_s(self) -> float:
        return self.total_roofline_time_s

    @property
    def operators(self) -> tuple[OperatorEstimate, ...]:
        moved = self.weight_bytes_column + self.activation_bytes_column + self.kv_bytes_column
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(moved > 0, self.flops_column / np.where(moved > 0, moved, 1.0), np.inf)
        t = self.table
        return tuple(
            OperatorEstimate(
                name=t.names[i], kind=t.kinds[i], layers=int(t.layers[i]), flops=float(self.flops_column[i]),
                weight_bytes=float(self.weight_bytes_column[i]),
                activation_bytes=float(self.activation_bytes_column[i]), kv_bytes=float(self.kv_bytes_column[i]),
                arithmetic_intensity=float(intensity[i]),
                bound="compute" if intensity[i] >= self.ridge_point else "memory",
                roofline_time_s=float(self.roofline_time_column[i]), time_s=float(self.time_column[i]),
            )
            for i in range(len(t))
        )

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
    if efficiency is None:  # the common case: remember the device's roof per precision and processor
        key = (dtype, processor)
        if key not in spec.roof_cache:
            spec.roof_cache[key] = roof_for(spec, dtype, processor=processor, efficiency=spec.efficiency)
        return spec.roof_cache[key]
    processor = processor or _processor_for(spec, dtype)
    peak, peak_dtype, peak_source = spec.processor_rate(processor, dtype)
    return Roof(
        peak_flops=peak,
        bandwidth_bytes_per_s=spec.memory_bandwidth_bytes_per_s,
        efficiency=efficiency,
        processor=processor,
        peak_dtype=peak_dtype,
        peak_source=peak_source,
        hardware=spec,
        dtype=dtype,
    )


def _processor_for(spec: HardwareSpec, dtype: str) -> str:
    """The default processor if it has a peak for ``dtype``; else the first processor that does.

    A phone's NPU publishes only INT8: a 16-bit analysis then runs on its CPU, and says so.
    """
    from llmeff.hardware.specs import MissingPeakError

    default = spec.default_processor()
    for name in [default] + [p for p in spec.processors() if p != default]:
        try:
            spec.processor_rate(name, dtype)
            return name
        except MissingPeakError:
            continue
    return default  # none has it: the error names the default processor's missing peak


def estimate(workload: Workload, spec: HardwareSpec, *, processor: str | None = None,
             efficiency: Efficiency | None = None, memo: dict | None = None) -> Estimate:
    """Prefill, decode over the whole generation, and the totals, for ``workload`` on ``spec``.

    ``memo`` (a dict the caller keeps) reuses a phase's estimate when the same phase object comes back
    on the same roof: a technique that only changes memory (paged KV) leaves both phases as they were.
    """
    roof = roof_for(spec, workload.activation_dtype, processor=processor, efficiency=efficiency)
    prefill = _remembered(memo, (workload.prefill, roof, workload.prompt_tokens), lambda: _phase_at(
        workload.prefill, roof, context=workload.prompt_tokens, label=f"prompt of {workload.prompt_tokens} tokens"))
    # Prefill yields the first output token; decode step j attends to prompt + j keys.
    first, last = workload.prompt_tokens + 1, workload.prompt_tokens + workload.output_tokens - 1
    steps = max(0, last - first + 1)
    decode = _remembered(memo, (workload.decode, roof, first, last), lambda: _phase_average(
        workload.decode, roof, first, last) if steps else _phase_at(
        workload.decode, roof, context=first, label=f"context {first} (no decode step: one output token)"))
    # a step yields decode_tokens_per_step tokens per sequence (more than one with speculation)
    per_token = decode.time_s / workload.decode_tokens_per_step
    decode_total = per_token * steps
    ttft = prefill.time_s + roof.efficiency.request_overhead_s
    return Estimate(
        workload=workload,
        hardware_id=spec.id,
        dtype=workload.activation_dtype,
        roof=roof,
        prefill=prefill,
        decode=decode,
        ttft_s=ttft,
        tpot_s=per_token if steps else 0.0,
        e2e_latency_s=ttft + decode_total,
        roofline_ttft_s=prefill.roofline_time_s,
        roofline_tpot_s=decode.roofline_time_s / workload.decode_tokens_per_step if steps else 0.0,
        memory=MemoryVerdict(workload.memory, spec.memory_capacity_bytes),
    )


MEMO_LIMIT = 4096  # phase estimates a memo keeps before it starts over


def _remembered(memo: dict | None, key: tuple, compute: Callable[[], PhaseEstimate]) -> PhaseEstimate:
    """``compute()``, or its earlier result for the same phase and roof objects (by identity, not value)."""
    if memo is None:
        return compute()
    phase, roof, *numbers = key
    slot = (id(phase), id(roof), *numbers)
    hit = memo.get(slot)
    if hit is not None and hit[0] is phase and hit[1] is roof:  # the references keep ids from being reused
        return hit[2]
    if len(memo) >= MEMO_LIMIT:
        memo.clear()
    result = compute()
    memo[slot] = (phase, roof, result)
    return result


def decode_at(workload: Workload, spec: HardwareSpec, context: int, *, processor: str | None = None,
              efficiency: Efficiency | None = None) -> PhaseEstimate:
    """One decode step attending to ``context`` keys."""
    if context < 1:
        raise InvalidInputError(f"must be at least 1, got {context}", field="context")
    roof = roof_for(spec, workload.activation_dtype, processor=processor, efficiency=efficiency)
    return _phase_at(workload.decode, roof, context=context, label=f"context {context}")


def _phase_at(phase: Phase, roof: Roof, *, context: int, label: str) -> PhaseEstimate:
    t = phase.table
    x = np.minimum(float(context), t.context_cap)
    flops = (t.flops_base + t.flops_per_context * x) * t.layers
    weight = t.weight_bytes * t.layers
    act = (t.activation_bytes_base + t.activation_bytes_per_context * x) * t.layers
    kv = (t.kv_bytes_base + t.kv_bytes_per_context * x) * t.layers
    moved = weight + act + kv
    peak, bandwidth, effective_peak, effective_bandwidth = roof.row_rates(t)
    pure = np.maximum(flops / peak, moved / bandwidth)
    real = np.maximum(flops / effective_peak, moved / effective_bandwidth)
    real = real + t.layers * (roof.efficiency.kernel_overhead_s * phase.kernel_overhead_factor)
    return PhaseEstimate(phase.name, label, t, roof.ridge_point, flops, weight, act, kv, pure, real,
                         _phase_total(phase, pure), _phase_total(phase, real) + roof.efficiency.step_overhead_s)


def _phase_average(phase: Phase, roof: Roof, first: int, last: int) -> PhaseEstimate:
    """Every operator averaged over the decode steps with contexts ``first..last`` (closed form).

    Most rows do not depend on the context (a GEMM reads the same weights at every step): their
    average is their value. The few that do (attention over the KV cache) are summed exactly in
    ``_sum_max``; FLOPs and bytes, being linear, average to their value at the mean context.
    """
    t = phase.table
    steps = last - first + 1
    cap = t.context_cap
    capped = bool(cap.min() < np.inf)
    if capped:  # mean of x = min(c, cap) over the steps, per row
        hi = np.minimum(float(last), np.floor(cap))
        flat_count = np.maximum(last - np.maximum(float(first), hi + 1.0) + 1.0, 0.0)
        at_cap = np.where(flat_count > 0, cap, 0.0)
        mean_x = (np.maximum(hi - first + 1.0, 0.0) * (first + hi) / 2.0 + flat_count * at_cap) / steps
    else:
        mean_x = (first + last) / 2.0
    means = (np.array([t.flops_base, t.activation_bytes_base, t.kv_bytes_base])
             + np.array([t.flops_per_context, t.activation_bytes_per_context, t.kv_bytes_per_context]) * mean_x)
    flops, act, kv = means * t.layers
    peak, bandwidth, effective_peak, effective_bandwidth = roof.row_rates(t)
    rates = ((peak, bandwidth), (effective_peak, effective_bandwidth))
    moved_base = t.weight_bytes + t.activation_bytes_base + t.kv_bytes_base
    moved_slope = t.activation_bytes_per_context + t.kv_bytes_per_context
    per_step = []
    sloped = np.flatnonzero(t.flops_per_context + moved_slope)
    for flops_rate, byte_rate in rates:
        times = np.maximum(t.flops_base / flops_rate, moved_base / byte_rate)  # context-free rows
        for i in sloped:
            row_flops = flops_rate if np.isscalar(flops_rate) else flops_rate[i]
            row_bytes = byte_rate if np.isscalar(byte_rate) else byte_rate[i]
            times[i] = _sum_max(t.flops_base[i] / row_flops, t.flops_per_context[i] / row_flops,
                                moved_base[i] / row_bytes, moved_slope[i] / row_bytes,
                                first, last, cap[i]) / steps
        per_step.append(times * t.layers)
    pure, real = per_step
    real = real + t.layers * (roof.efficiency.kernel_overhead_s * phase.kernel_overhead_factor)
    return PhaseEstimate(phase.name, f"average over contexts {first}..{last}", t, roof.ridge_point,
                         flops, t.weight_bytes * t.layers, act, kv, pure, real,
                         _phase_total(phase, pure), _phase_total(phase, real) + roof.efficiency.step_overhead_s)


def _phase_total(phase: Phase, times: np.ndarray) -> float:
    """Rows run one after another; with overlap, each resource's rows run alongside the others'."""
    if not phase.overlap_resources:
        return float(times.sum())
    per_resource: dict[str, float] = {}
    for resource, time in zip(phase.table.resources, times):
        per_resource[resource] = per_resource.get(resource, 0.0) + float(time)
    return max(per_resource.values())


def _sum_linear(base: float, slope: float, first: int, last: int) -> float:
    """Sum of base + slope * c over integer c in first..last."""
    count = last - first + 1
    return count * base + slope * (first + last) * count / 2.0 if count > 0 else 0.0


def _sum_max(a0: float, a1: float, b0: float, b1: float, first: int, last: int, cap: float) -> float:
    """Exact sum over integer c in first..last of max(a0 + a1 x, b0 + b1 x), with x = min(c, cap).

    Two lines cross at most once, so the range splits at the crossing into two parts on each of
    which one line wins; past the cap the value is constant.
    """
    if first > last:
        return 0.0
    if last > cap:
        rising = _sum_max(a0, a1, b0, b1, first, int(cap), math.inf) if first <= cap else 0.0
        flat_steps = last - max(first, int(cap) + 1) + 1
        return rising + flat_steps * max(a0 + a1 * cap, b0 + b1 * cap)
    if a1 == b1:
        return _sum_linear(max(a0, b0), a1, first, last)
    split = math.floor((b0 - a0) / (a1 - b1))  # the lines meet between split and split + 1
    if first <= split < last:
        return _sum_max(a0, a1, b0, b1, first, split, cap) + _sum_max(a0, a1, b0, b1, split + 1, last, cap)
    mid = (first + last) / 2.0
    return _sum_linear(a0, a1, first, last) if a0 + a1 * mid >= b0 + b1 * mid else _sum_linear(b0, b1, first, last)
