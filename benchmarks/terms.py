"""A case's roofline split into the terms calibration scales: compute time, memory time, fixed time, kernels.

Under efficiencies (c, b), per-kernel overhead k and per-step overhead s, a phase takes
``sum(max(compute_s / c, memory_s / b)) + fixed_s + kernels * k + s`` (link rows run at their nominal
bandwidth, so they are fixed). Computing the ideal terms once per case lets the fit evaluate
hundreds of rows for a new parameter vector in one vectorized pass. Decode is taken at its mean
context: its FLOPs and bytes are linear in the context, so only the max is approximated (the
reported predictions re-run the exact model with the fitted efficiencies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmeff.benchmarks.predict import RowCase
from llmeff.hardware.specs import IDEAL
from llmeff.roofline import LINKS, _phase_at, roof_for

METRIC_CODES = {name: i for i, name in enumerate(
    ("ttft_ms", "tpot_ms", "e2e_latency_ms", "decode_tokens_per_s", "prefill_tokens_per_s",
     "throughput_tokens_per_s"))}


@dataclass(frozen=True)
class TermTable:
    """Flattened operator terms of many cases; ``segment`` = 2 * case + (0 prefill, 1 decode)."""

    segment: np.ndarray
    compute_s: np.ndarray
    memory_s: np.ndarray
    fixed_s: np.ndarray  # per segment: link rows, which no efficiency scales
    kernels: np.ndarray  # per segment: kernels launched (layers x overhead share)
    metric: np.ndarray  # per case: METRIC_CODES
    batch: np.ndarray
    prompt: np.ndarray
    steps: np.ndarray  # decode steps after the first token
    tokens_per_step: np.ndarray
    per_device: np.ndarray  # per case: divide throughput by the devices
    devices: np.ndarray
    measured: np.ndarray

    @property
    def cases(self) -> int:
        return len(self.metric)

    def predict(self, c: np.ndarray, b: np.ndarray, k: np.ndarray, s: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Each case's metric under per-case compute/bandwidth fractions and kernel/step/request overheads."""
        case = self.segment // 2
        scaled = np.maximum(self.compute_s / c[case], self.memory_s / b[case])
        phase = np.bincount(self.segment, weights=scaled, minlength=2 * self.cases)
        phase = phase + self.fixed_s + self.kernels * np.repeat(k, 2) + np.repeat(s, 2)
        prefill, step = phase[0::2], phase[1::2]
        tpot = step / self.tokens_per_step
        ttft = prefill + r
        e2e = ttft + self.steps * tpot
        out_tokens = self.steps + 1
        throughput = self.batch * out_tokens / e2e / np.where(self.per_device, self.devices, 1)
        by_metric = np.stack([ttft * 1e3, tpot * 1e3, e2e * 1e3, self.batch / tpot,
                              self.batch * self.prompt / prefill, throughput])
        return by_metric[self.metric, np.arange(self.cases)]


def term_table(cases: list[RowCase]) -> TermTable:
    segment, compute, memory, fixed, kernels = [], [], [], [], []
    columns = {name: [] for name in ("metric", "batch", "prompt", "steps", "tokens_per_step", "per_device",
                                     "devices", "measured")}
    for n, case in enumerate(cases):
        w = case.workload
        roof = roof_for(case.spec, w.activation_dtype, efficiency=IDEAL)
        steps = max(0, w.output_tokens - 1)
        mean_context = w.prompt_tokens + (w.output_tokens if steps else 2) / 2.0
        for side, (phase, context) in enumerate(((w.prefill, w.prompt_tokens), (w.decode, mean_context))):
            est = _phase_at(phase, roof, context=context, label="")
            t = phase.table
            peak, bandwidth, _, _ = roof.row_rates(t)
            moved = est.weight_bytes_column + est.activation_bytes_column + est.kv_bytes_column
            link = np.isin(np.array(t.resources), LINKS)
            compute_s = np.broadcast_to(est.flops_column / peak, moved.shape)
            memory_s = np.broadcast_to(moved / bandwidth, moved.shape)
            segment.append(np.full(int((~link).sum()), 2 * n + side))
            compute.append(compute_s[~link])
            memory.append(memory_s[~link])
            fixed.append(float(memory_s[link].sum()))
            kernels.append(float((t.layers * phase.kernel_overhead_factor).sum()))
        row = case.measurement.row
        for name, value in (("metric", METRIC_CODES[row.metric]), ("batch", w.batch), ("prompt", w.prompt_tokens),
                            ("steps", steps), ("tokens_per_step", w.decode_tokens_per_step),
                            ("per_device", row.unit == "tokens/s/GPU"), ("devices", w.devices),
                            ("measured", row.value)):
            columns[name].append(value)
    return TermTable(np.concatenate(segment), np.concatenate(compute), np.concatenate(memory), np.array(fixed),
                     np.array(kernels), **{k: np.array(v) for k, v in columns.items()})
