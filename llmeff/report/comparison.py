"""The comparison report: models x hardware x technique combinations, against the benchmark registry."""

from __future__ import annotations

from collections.abc import Callable

from llmeff.report.cells import analysis_cells, registry_points
from llmeff.report.document import Report, Section
from llmeff.report.request import ReportRequest
from llmeff.report import views


def figure_count(request: ReportRequest) -> int:
    """Figures a report draws (for the progress bar): roofline and breakdown per device, plus three."""
    return 2 * len(request.hardware) + 3


def comparison_report(request: ReportRequest, db, progress: Callable[[], None]) -> tuple[Report, dict]:
    """The report's content and the registry inputs it used (for the manifest)."""
    request = request.validated()
    cells, sources = analysis_cells(request, db, progress)
    registry = registry_points([c.model for c in cells if not c.from_config], {c.hardware for c in cells}, db,
                               calibrated=request.calibrated)
    progress()
    w = request.workload
    workload = (f"batch {w.batch}, {w.prompt_tokens} prompt + {w.output_tokens} output tokens per sequence, "
                f"weights {w.weight_dtype}, activations {w.activation_dtype}, KV cache {w.kv_dtype or w.activation_dtype}")
    efficiency = sorted({c.efficiency_source.split(":")[0] for c in cells if c.estimate})
    summary = [f"Models: {', '.join(dict.fromkeys(c.model for c in cells))}. "
               f"Hardware: {', '.join(dict.fromkeys(c.hardware_name for c in cells))}.",
               f"Workload: {workload}.",
               f"Combinations: {', '.join(c.label for c in request.all_combinations)}.",
               f"Efficiency terms: {'; '.join(efficiency) or '-'}."]
    summary += _highlights(cells)

    figures = views.roofline_figures(cells)
    for _ in figures:
        progress()
    breakdowns = views.breakdown_figures(cells)
    for _ in breakdowns:
        progress()
    comparison = views.comparison_figure(cells)
    progress()
    memory = views.memory_figure(cells)
    progress()
    measured = views.measured_figure(registry)
    progress()

    sections = [
        Section("Technique combinations compared", (
            "Each combination is applied to the same model and workload on each device; the baseline applies no "
            "technique. Times are predicted by the roofline with the stated efficiency terms.",),
            (comparison,), (views.summary_table(cells),)),
        Section("Rooflines", (
            "Operators left of a roof's ridge point are memory-bound: their time is bytes moved over bandwidth, so "
            "techniques that move fewer bytes (quantized weights or KV cache) help them, more FLOP/s does not.",),
            tuple(figures), (views.roofs_table(cells),)),
        Section("Where the time goes", (), tuple(breakdowns), (views.breakdown_table(cells),)),
        Section("Memory against capacity", (), (memory,), (views.memory_table(cells),)),
        _measured_section(registry, measured),
        Section("Sources", ("Every datasheet figure, model configuration, efficiency term and paper the numbers "
                            "above rest on.",), (), (views.sources_table(sources),)),
    ]
    report = Report(request.title or _title(request), tuple(summary), tuple(sections),
                    (views.operators_table(cells),))
    inputs = {"config_files_sha256": {c: _digest(c) for c in request.configs},
              "registry_rows": len(registry.points),
              "registry_row_ids": sorted(p.id for p in registry.points),
              "registry_calibration": registry.calibration}
    return report, inputs


def _title(request: ReportRequest) -> str:
    return f"llmeff report: {', '.join(request.models + request.configs)} on {', '.join(request.hardware)}"


def _digest(path: str) -> str:
    import hashlib
    from pathlib import Path

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _highlights(cells) -> list[str]:
    """Per device, the combination with the most output tokens per second, and any that does not fit."""
    out = []
    for hardware, name in dict.fromkeys((c.hardware, c.hardware_name) for c in cells):
        mine = [c for c in cells if c.hardware == hardware and c.estimate is not None]
        idle = [c.label for c in cells if c.hardware == hardware and c.estimate is None]
        if idle:
            out.append(f"{name}: {', '.join(idle)} cannot run there (the summary table says why).")
        fitting = [c for c in mine if c.fits is not False]
        if not fitting:
            out.append(f"{name}: no combination fits in device memory.")
            continue
        best = max(fitting, key=lambda c: c.estimate.output_tokens_per_s)
        base = next((c for c in mine if c.label == "baseline"), None)
        if base is not None and base.fits is False:
            gain = "; the baseline does not fit in device memory"
        elif base is not None and base is not best:
            gain = f", x{best.estimate.output_tokens_per_s / base.estimate.output_tokens_per_s:.2f} the baseline"
        else:
            gain = ""
        out.append(f"{name}: highest throughput with {best.label} ({best.estimate.output_tokens_per_s:,.0f} "
                   f"tokens/s, TPOT {best.estimate.tpot_s * 1e3:.2f} ms{gain}).")
    return out


def _measured_section(registry, figure) -> Section:
    if not registry.points:
        return Section("Predicted vs measured", (
            "The benchmark registry holds no measurement of these models on these devices that the cost model can "
            "predict (llmeff bench list shows what it holds; llmeff bench import adds your own).",))
    skipped = (f" {registry.unpredictable} more stored rows of these models and devices cannot be predicted "
               "(see llmeff bench compare)." if registry.unpredictable else "")
    return Section("Predicted vs measured", (
        f"{len(registry.points)} stored measurements of these models on these devices, each predicted for its own "
        f"configuration (batch, lengths, precision, technique as the source states them).{skipped}",),
        (figure,), (views.measured_table(registry),))
