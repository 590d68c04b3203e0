"""The numbers a report shows: one cell per model x hardware x technique combination, plus the registry.

Collected once, then every table, figure and document is a view of them, so a figure and the
table beside it can never disagree.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass

from llmeff.errors import TechniqueNotApplicableError, UnknownIdError
from llmeff.hardware.specs import MissingPeakError
from llmeff.roofline import Estimate


@dataclass(frozen=True)
class Cell:
    """One prediction; ``estimate`` is None when the combination cannot run there (``reason`` says why)."""

    model: str
    hardware: str  # registry id
    hardware_name: str
    label: str  # the combination, or a plan's name for it
    estimate: Estimate | None
    reason: str = ""
    efficiency_source: str = ""
    capacity_bytes: float | None = None
    from_config: bool = False  # the model came from a config.json file, not the registry

    @property
    def fits(self) -> bool | None:
        return None if self.estimate is None else self.estimate.memory.fits


@dataclass(frozen=True)
class Source:
    """Where a reported number comes from: what it backs, and the reference."""

    backs: str
    reference: str


def analysis_cells(request, db, progress: Callable[[], None]) -> tuple[list[Cell], list[Source]]:
    """Every model x hardware x combination of a ReportRequest through ``llmeff.analyze``."""
    from llmeff.analysis import Analysis, AnalysisRequest, analyze

    cells: list[Cell] = []
    sources: dict[tuple[str, str], None] = {}
    subjects = [(model, None) for model in request.models] + [(None, config) for config in request.configs]
    for model, config in subjects:
        for hardware in request.hardware:
            for combination in request.all_combinations:
                try:
                    result: Analysis | None = analyze(AnalysisRequest(
                        hardware=hardware, model=model, config=config, workload=request.workload,
                        techniques=combination.techniques, db=db, engine=request.engine,
                        calibrated=request.calibrated))
                except (TechniqueNotApplicableError, MissingPeakError) as exc:
                    # one combination that cannot run on one device is a finding, not a failed report
                    from llmeff.kb.api import open_kb

                    with open_kb(db) as kb:
                        spec = kb.hardware(hardware)
                        label = kb.model(model).id if model is not None else Path(config).as_posix()
                    cells.append(Cell(label, spec.id, spec.name, combination.label, None, str(exc),
                                      from_config=config is not None))
                    progress()
                    continue
                e = result.estimate
                cells.append(Cell(result.model, e.hardware_id, result.hardware_name, combination.label, e,
                                  efficiency_source=result.efficiency_source,
                                  capacity_bytes=e.memory.capacity_bytes, from_config=config is not None))
                for key in cell_sources(e, result.efficiency_source, combination.techniques, db):
                    sources[key] = None
                if config is not None:
                    sources[(f"{result.model}: architecture", "the config.json given in the request "
                                                              "(its SHA-256 is in manifest.json)")] = None
                progress()
    return cells, [Source(*key) for key in sorted(sources)]


def cell_sources(e: Estimate, efficiency_source: str, techniques: tuple[str, ...], db) -> list[tuple[str, str]]:
    """The references behind one estimate: the device's sheet, the model's config, the techniques named."""
    from llmeff.kb.api import open_kb

    with open_kb(db) as kb:
        spec = kb.hardware(e.hardware_id)
        out = [(f"{spec.id}: peaks, bandwidth, capacity", s) for s in spec.sources]
        if e.roof.peak_source:
            out.append((f"{spec.id}: {e.dtype} runs at the {e.roof.peak_dtype} peak", e.roof.peak_source))
        out.append((f"{spec.id}: efficiency terms", efficiency_source))
        try:
            record = kb.model(e.workload.model)
            out += [(f"{record.id}: architecture (config.json)", s) for s in record.sources]
        except UnknownIdError:
            pass  # a model given as a config.json file: its path is in the request
        for text in techniques:
            name = text.partition(":")[0].strip()
            for entry in _entries_named(kb, name):
                out += [(f"{text}: {entry.summary.id}", _paper(p)) for p in entry.papers]
    return out


def _entries_named(kb, name: str) -> list:
    """The entry a user named, or (for a plugin id) the first entries that link that plugin."""
    try:
        return [kb.technique(name)]
    except UnknownIdError:
        linked = sorted(s.id for s in kb.techniques() if s.plugin == name)
        return [kb.technique(i) for i in linked[:3]]


def _paper(p) -> str:
    where = f"arXiv {p.arxiv}" if p.arxiv else (p.venue or p.url_hint or "")
    return f"{p.first_author} et al. {p.year}, {p.title}" + (f" ({where})" if where else "")


@dataclass(frozen=True)
class MeasuredPoint:
    """A registry measurement of one of the report's models and devices, beside its prediction."""

    id: str
    source: str
    locator: str
    model: str
    hardware: str
    metric: str
    unit: str
    measured: float
    predicted: float
    band: tuple[float, float] | None
    configuration: str

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1.0


@dataclass(frozen=True)
class Registry:
    points: tuple[MeasuredPoint, ...]
    calibration: str  # what efficiency terms the predictions used
    band_from: str  # where the band comes from
    unpredictable: int  # matching rows the cost model cannot predict (e.g. measured under load)


def registry_points(model_ids, hardware_ids, db: str | os.PathLike[str] | None, *, calibrated: bool) -> Registry:
    """Predicted vs measured for every stored measurement of these models on these devices."""
    from llmeff.benchmarks.api import compare_measurements
    from llmeff.benchmarks.compare import residual_bands
    from llmeff.benchmarks.registry import MeasurementFilter

    predictions, unpredictable, calibration = [], 0, ""
    for model in sorted(set(model_ids)):
        comparison = compare_measurements(db, MeasurementFilter(model=model), calibrated=calibrated)
        calibration = comparison.calibration
        predictions += [p for p in comparison.predictions
                        if p.measurement.model_id == model and p.measurement.hardware_id in hardware_ids]
        unpredictable += sum(1 for u in comparison.unpredictable
                             if u.measurement.hardware_id in hardware_ids and u.measurement.model_id == model)
    if any(p.band is not None for p in predictions):
        band_from = "the stored calibration's left-out residuals (llmeff bench calibrate)"
        bands = None
    else:
        # no stored calibration: the spread of these very rows around the published-default model
        bands = residual_bands(predictions) if predictions else {}
        band_from = "the residuals of the rows shown (no stored calibration)"
    points = []
    for p in predictions:
        row, band = p.measurement.row, p.band
        if bands is not None and row.metric in bands:
            import math

            low, high = bands[row.metric]
            band = (p.predicted * math.exp(-high), p.predicted * math.exp(-low))
        lengths = (f"{_or_dash(row.input_tokens)}/{_or_dash(row.output_tokens)} tokens"
                   if row.input_tokens is not None or row.output_tokens is not None else None)
        configuration = ", ".join(x for x in (
            row.technique, f"{row.device_count} devices" if row.device_count > 1 else None,
            f"batch {row.batch_size}" if row.batch_size else None, lengths, row.engine) if x)
        points.append(MeasuredPoint(p.measurement.id, row.source_id, row.source_locator, p.measurement.model_id,
                                    p.measurement.hardware_id, row.metric, row.unit, row.value, p.predicted, band,
                                    configuration))
    points.sort(key=lambda m: (m.hardware, m.metric, m.source, m.id))
    return Registry(tuple(points), calibration, band_from, unpredictable)


def _or_dash(value) -> str:
    return "-" if value is None else str(value)
