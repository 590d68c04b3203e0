"""Tables and figures of a report, as views of its cells (shared by comparison and plan reports)."""

from __future__ import annotations

import math
from collections import defaultdict

from llmeff.hardware.specs import MissingPeakError
from llmeff.report import plots
from llmeff.report.cells import Cell, Registry, Source
from llmeff.report.document import Figure
from llmeff.report.tables import Table, columns, gb, ms, percent, rate, share, si

GB = 1e9
PHASES = (("prefill", "prefill (whole prompt)", "ms"), ("decode", "decode (per output token)", "ms per step"))


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text.lower()).strip("-")


def _devices(cells: list[Cell]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((c.hardware, c.hardware_name) for c in cells))


def _name(cell: Cell, models: int) -> str:
    return f"{cell.model}: {cell.label}" if models > 1 else cell.label


def _models(cells: list[Cell]) -> int:
    return len({c.model for c in cells})


def _cell_columns(cells: list[Cell]) -> tuple:
    """The columns naming a cell: model (shown only when there are several), hardware, combination."""
    return (("model", "model" if _models(cells) > 1 else None), ("hardware", "hardware"),
            ("combination", "combination", None, True))


def summary_table(cells: list[Cell], baseline_label: str = "baseline") -> Table:
    """TTFT, TPOT, throughput and memory per cell, and throughput against the baseline on the same device."""
    base = {(c.model, c.hardware): c for c in cells if c.label == baseline_label and c.estimate}
    rows = []
    for c in cells:
        e, ref = c.estimate, base.get((c.model, c.hardware))
        if e is None:
            rows.append((c.model, c.hardware, c.label, None, None, None, None, None, None, None, c.reason))
            continue
        gain = e.output_tokens_per_s / ref.estimate.output_tokens_per_s if ref else None
        rows.append((c.model, c.hardware, c.label, e.ttft_s * 1e3, e.tpot_s * 1e3, e.output_tokens_per_s,
                     gain, e.memory.footprint.total_bytes / GB,
                     None if c.capacity_bytes is None else c.capacity_bytes / GB, e.memory.fits,
                     "" if e.memory.fits is not False else "does not fit in device memory"))
    return Table("summary", "Predicted latency, throughput and memory", columns(
        *_cell_columns(cells), ("ttft_ms", "TTFT (ms)", ms), ("tpot_ms", "TPOT (ms)", ms), ("output_tokens_per_s", "tokens/s", rate),
        ("throughput_vs_baseline", "vs baseline", lambda v: f"x{v:.2f}"), ("memory_gb", "memory (GB)", gb),
        ("capacity_gb", "capacity (GB)", gb), ("fits", "fits"), ("note", "note", None, True)), tuple(rows),
        "tokens/s: generated tokens per second for the whole batch over the end-to-end latency. "
        "vs baseline: throughput relative to no technique on the same device.")


def memory_table(cells: list[Cell]) -> Table:
    rows = []
    for c in cells:
        if c.estimate is None:
            continue
        f = c.estimate.memory.footprint
        headroom = None if c.capacity_bytes is None else (c.capacity_bytes - f.total_bytes) / GB
        rows.append((c.model, c.hardware, c.label, f.weight_bytes / GB, f.kv_cache_bytes / GB,
                     f.activation_bytes / GB, f.total_bytes / GB,
                     None if c.capacity_bytes is None else c.capacity_bytes / GB, headroom))
    return Table("memory", "Resident memory per device (GB = 10^9 bytes)", columns(
        *_cell_columns(cells), ("weights_gb", "weights", gb), ("kv_cache_gb", "KV cache", gb),
        ("activations_gb", "activations", gb), ("total_gb", "total", gb), ("capacity_gb", "capacity", gb),
        ("headroom_gb", "headroom", gb)), tuple(rows),
        "KV cache at the end of the generation (prompt + output tokens); activations: the largest transient "
        "buffers of one prefill kernel.")


def _kind_times(phase) -> dict[str, float]:
    times: dict[str, float] = defaultdict(float)
    for op in phase.operators:
        times[op.kind] += op.time_s
    return dict(sorted(times.items()))


def breakdown_table(cells: list[Cell]) -> Table:
    rows = []
    for c in cells:
        if c.estimate is None:
            continue
        for phase_name, _, _ in PHASES:
            phase = getattr(c.estimate, phase_name)
            total = phase.time_s
            for kind, seconds in _kind_times(phase).items():
                rows.append((c.model, c.hardware, c.label, phase_name, kind, seconds * 1e3,
                             100 * seconds / total if total else None))
    return Table("breakdown", "Time by operator class", columns(
        *_cell_columns(cells), ("phase", "phase"), ("operator_class", "class"),
        ("time_ms", "time (ms)", ms), ("share_percent", "share", share)), tuple(rows),
        "prefill: the whole prompt's forward pass; decode: the mean step over the generation.")


def operators_table(cells: list[Cell]) -> Table:
    rows = []
    for c in cells:
        if c.estimate is None:
            continue
        for phase_name, _, _ in PHASES:
            for op in getattr(c.estimate, phase_name).operators:
                intensity = op.arithmetic_intensity if math.isfinite(op.arithmetic_intensity) else None
                attained = op.flops / op.time_s if op.time_s > 0 else None
                rows.append((c.model, c.hardware, c.label, phase_name, op.name, op.kind, op.layers, op.flops,
                             op.bytes, intensity, attained, op.bound, op.time_s * 1e3))
    return Table("operators", "Every operator of prefill and decode (the points of the roofline charts)", columns(
        ("model",), ("hardware",), ("combination",), ("phase",), ("operator",), ("class",), ("layers",),
        ("flops",), ("bytes",), ("flop_per_byte",), ("attained_flop_per_s",), ("bound",), ("time_ms",)),
        tuple(rows))


def _roofs(cells: list[Cell]) -> list[tuple[str, float, float]]:
    """(dtype, peak, bandwidth) of every precision the cells' operators compute in on their processor."""
    found: dict[str, tuple[str, float, float]] = {}
    for c in cells:
        e = c.estimate
        if e is None:
            continue
        dtypes = {d for phase in (e.prefill, e.decode)
                  for d, r in zip(phase.table.dtypes, phase.table.resources) if r == "compute"}
        for dtype in sorted(dtypes | {e.dtype}):
            if dtype in found:
                continue
            try:
                peak = e.roof.hardware.processor_rate(e.roof.processor, dtype)[0]
            except MissingPeakError:
                continue
            found[dtype] = (dtype, peak, e.roof.bandwidth_bytes_per_s)
    return sorted(found.values(), key=lambda r: r[1])


def roofs_table(cells: list[Cell]) -> Table:
    rows = []
    for hardware, _ in _devices(cells):
        for dtype, peak, bandwidth in _roofs([c for c in cells if c.hardware == hardware]):
            rows.append((hardware, dtype, peak, bandwidth, peak / bandwidth))
    return Table("roofs", "The roofs of each device (datasheet peaks, dense)", columns(
        ("hardware", "hardware"), ("dtype", "precision"), ("peak_flop_per_s", "peak FLOP/s", si),
        ("bandwidth_bytes_per_s", "bandwidth (B/s)", si), ("ridge_flop_per_byte", "ridge (FLOP/B)",
                                                           lambda v: f"{v:.0f}")), tuple(rows))


def roofline_figures(cells: list[Cell]) -> list[Figure]:
    out = []
    models = _models(cells)
    for hardware, name in _devices(cells):
        mine = [c for c in cells if c.hardware == hardware and c.estimate is not None]
        if not mine:
            continue
        panels = []
        memory_bound = total = 0
        for c in mine:
            points = []
            for phase_name, _, _ in PHASES:
                for op in getattr(c.estimate, phase_name).operators:
                    if op.flops <= 0 or op.bytes <= 0 or op.time_s <= 0:
                        continue  # no arithmetic (a copy, a transfer): nothing to place on a roofline
                    points.append((phase_name, op.kind, op.name, op.arithmetic_intensity, op.flops / op.time_s))
                    total += 1
                    memory_bound += op.bound == "memory"
            panels.append((_name(c, models), points))
        png = plots.roofline(f"Roofline: {name}", _roofs(mine), panels)
        out.append(Figure(f"roofline-{slug(hardware)}.png",
                          f"Roofline of {name}: every operator of prefill (circles) and decode (triangles) at its "
                          f"arithmetic intensity and predicted FLOP/s; {memory_bound} of {total} operator points "
                          "are memory-bound (left of the ridge).", png))
    return out


def breakdown_figures(cells: list[Cell]) -> list[Figure]:
    out = []
    models = _models(cells)
    for hardware, name in _devices(cells):
        mine = [c for c in cells if c.hardware == hardware and c.estimate is not None]
        if not mine:
            continue
        phases = [(title, unit, [{k: v * 1e3 for k, v in _kind_times(getattr(c.estimate, key)).items()}
                                 for c in mine]) for key, title, unit in PHASES]
        png = plots.breakdown(f"Time by operator class: {name}", [_name(c, models) for c in mine], phases)
        out.append(Figure(f"breakdown-{slug(hardware)}.png",
                          f"Where the time goes on {name}, per combination: prefill of the whole prompt and one "
                          "mean decode step, split by operator class.", png))
    return out


def comparison_figure(cells: list[Cell], title: str = "Technique combinations compared") -> Figure:
    models = _models(cells)
    labels = list(dict.fromkeys(_name(c, models) for c in cells))
    devices = _devices(cells)
    by_key = {(c.hardware, _name(c, models)): c for c in cells}

    def values(metric):
        return [[metric(by_key[(hw, label)].estimate) if (hw, label) in by_key and by_key[(hw, label)].estimate
                 else None for label in labels] for hw, _ in devices]

    panels = [("TTFT (ms)", values(lambda e: e.ttft_s * 1e3)),
              ("TPOT (ms)", values(lambda e: e.tpot_s * 1e3)),
              ("throughput (output tokens/s)", values(lambda e: e.output_tokens_per_s)),
              ("memory (GB)", values(lambda e: e.memory.footprint.total_bytes / GB))]
    png = plots.grouped_bars(title, labels, [name for _, name in devices], panels)
    return Figure("comparison.png", "TTFT, TPOT, throughput and memory of each combination (the baseline first), "
                                    "one colour per device; 'n/a' marks a combination that cannot run there.", png)


def memory_figure(cells: list[Cell]) -> Figure:
    models = _models(cells)
    shown = [c for c in cells if c.estimate is not None]
    multi = len(_devices(cells)) > 1
    labels = [(f"{c.hardware}: " if multi else "") + _name(c, models) for c in shown]
    parts = [("weights", [c.estimate.memory.footprint.weight_bytes / GB for c in shown]),
             ("KV cache", [c.estimate.memory.footprint.kv_cache_bytes / GB for c in shown]),
             ("activations", [c.estimate.memory.footprint.activation_bytes / GB for c in shown])]
    capacities = [None if c.capacity_bytes is None else c.capacity_bytes / GB for c in shown]
    png = plots.memory("Memory per device against capacity", labels, parts, capacities)
    return Figure("memory.png", "Resident memory per device (weights, KV cache at the end of the generation, "
                                "peak activations); the black mark is the device's capacity.", png)


METRIC_TITLES = {"ttft_ms": "TTFT (ms)", "tpot_ms": "TPOT (ms)", "throughput_tokens_per_s": "throughput (tokens/s)",
                 "decode_tokens_per_s": "decode (tokens/s)", "prefill_tokens_per_s": "prefill (tokens/s)",
                 "e2e_latency_ms": "end-to-end latency (ms)", "speedup_x": "speedup (x)"}


def measured_figure(registry: Registry) -> Figure | None:
    if not registry.points:
        return None
    metrics = sorted({p.metric for p in registry.points})
    panels = [(METRIC_TITLES.get(m, m), [(p.hardware, p.measured, p.predicted, p.band)
                                         for p in registry.points if p.metric == m]) for m in metrics]
    png = plots.predicted_vs_measured("Predicted vs measured (benchmark registry)", panels,
                                      "stored calibration" if registry.band_from.startswith("the stored")
                                      else "residuals of these rows")
    return Figure("predicted-vs-measured.png",
                  f"Each stored measurement of these models on these devices against the cost model's prediction "
                  f"of the same configuration; the grey strip: the 80% band of predicted / measured, from {registry.band_from}.",
                  png)


def measured_table(registry: Registry) -> Table:
    rows = tuple((p.hardware, p.metric, p.configuration, p.measured, p.predicted, 100 * p.error,
                  p.band[0] if p.band else None, p.band[1] if p.band else None, p.source, p.locator, p.id)
                 for p in registry.points)
    return Table("measurements", "Predicted vs measured", columns(
        ("hardware", "hardware"), ("metric", "metric"), ("configuration", "configuration", None, True),
        ("measured", "measured", rate), ("predicted", "predicted", rate), ("error_percent", "error", percent),
        ("band_low", "80% band low", rate), ("band_high", "80% band high", rate), ("source", "source", None, True),
        ("locator",), ("measurement_id",)), rows,
        f"error = predicted / measured - 1. Predictions use {registry.calibration}. The CSV gives each row's "
        "place in its source (table and row).")


def sources_table(sources: list[Source]) -> Table:
    return Table("sources", "Sources behind the numbers", columns(
        ("backs", "what it backs", None, True), ("reference", "reference", None, True)),
        tuple((s.backs, s.reference) for s in sources))
