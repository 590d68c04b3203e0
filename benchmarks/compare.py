"""Predicted vs measured: every measurement's configuration through the cost model, and error summaries.

The error of one row is ``predicted / measured - 1``; a group's summary gives the median and mean
absolute percentage error, the median signed error (bias: positive = the model predicts a larger
number than measured, optimistic for tokens/s and pessimistic for a latency) and its worst rows.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from llmeff.benchmarks.calibrate import Fit, fit as fit_cases
from llmeff.benchmarks.predict import RowCase, Unpredictable, predict_case, prepare
from llmeff.benchmarks.registry import StoredMeasurement

GROUPINGS = ("metric", "hardware", "technique", "engine", "source")
BAND_QUANTILES = (0.1, 0.9)


@dataclass(frozen=True)
class Prediction:
    measurement: StoredMeasurement
    predicted: float
    engine: str
    device_class: str
    fit: str  # which calibration terms the prediction used
    assumptions: tuple[str, ...]
    band: tuple[float, float] | None = None  # where 80% of measurements fall, from calibration residuals

    @property
    def error(self) -> float:
        """Signed relative error, predicted / measured - 1."""
        return self.predicted / self.measurement.row.value - 1.0

    def group(self, grouping: str) -> str:
        row = self.measurement.row
        return {"metric": row.metric, "hardware": self.measurement.hardware_id or row.hardware,
                "technique": row.technique or "none", "engine": self.engine, "source": row.source_id}[grouping]


@dataclass(frozen=True)
class GroupSummary:
    grouping: str
    key: str
    rows: int
    mdape: float  # percent
    mape: float
    bias: float  # median signed error, percent
    worst: tuple[str, ...]  # measurement ids, worst first


@dataclass(frozen=True)
class Comparison:
    predictions: tuple[Prediction, ...]
    unpredictable: tuple[Unpredictable, ...]
    calibration: str  # what efficiency terms the predictions used

    def overall(self) -> GroupSummary:
        return summarize(self.predictions, "all", "all")

    def summaries(self, grouping: str) -> list[GroupSummary]:
        groups: dict[str, list[Prediction]] = defaultdict(list)
        for p in self.predictions:
            groups[p.group(grouping)].append(p)
        return [summarize(rows, grouping, key) for key, rows in sorted(groups.items())]


def summarize(predictions, grouping: str, key: str, worst: int = 3) -> GroupSummary:
    errors = [p.error for p in predictions]
    absolute = [abs(e) for e in errors]
    ranked = sorted(predictions, key=lambda p: -abs(p.error))
    return GroupSummary(grouping, key, len(errors), 100 * statistics.median(absolute) if errors else float("nan"),
                        100 * statistics.fmean(absolute) if errors else float("nan"),
                        100 * statistics.median(errors) if errors else float("nan"),
                        tuple(p.measurement.id for p in ranked[:worst]))


def compare(measurements: list[StoredMeasurement], kb, calibration: Fit | None = None,
            bands: dict[str, tuple[float, float]] | None = None) -> Comparison:
    """Predict every measurement (with ``calibration``'s terms, else the published defaults)."""
    prepared = prepare(measurements, kb)
    cases = [c for c in prepared if isinstance(c, RowCase)]
    predictions = tuple(predict_cases(cases, calibration, bands))
    label = ("calibrated (llmeff bench calibrate)" if calibration is not None
             else "uncalibrated: the published default efficiencies (run `llmeff bench calibrate`)")
    return Comparison(predictions, tuple(c for c in prepared if isinstance(c, Unpredictable)), label)


def predict_cases(cases: list[RowCase], calibration: Fit | None, bands) -> list[Prediction]:
    chosen: dict[tuple[str, str], tuple] = {}
    out = []
    for case in cases:
        key = (case.spec.id, case.engine)
        if key not in chosen:
            if calibration is None:
                chosen[key] = (case.spec.efficiency, f"published default: {case.spec.efficiency.source[:80]}")
            else:
                chosen[key] = calibration.efficiency_for(case.spec, case.device_class, case.engine)
        efficiency, which = chosen[key]
        predicted = predict_case(case, efficiency)
        band = None
        if bands and case.metric in bands:
            low, high = bands[case.metric]  # quantiles of log(predicted / measured)
            band = (predicted * float(np.exp(-high)), predicted * float(np.exp(-low)))
        out.append(Prediction(case.measurement, predicted, case.engine, case.device_class, which,
                              case.assumptions, band))
    return out


@dataclass(frozen=True)
class Holdout:
    """Leave-one-source-out: each source's rows predicted by a fit that never saw that source."""

    mode: str
    predictions: tuple[Prediction, ...]

    def comparison(self) -> Comparison:
        return Comparison(self.predictions, (), f"leave-one-source-out ({self.mode})")

    def bands(self) -> dict[str, tuple[float, float]]:
        return residual_bands(self.predictions)


def leave_one_source_out(cases: list[RowCase], *, mode: str = "engine") -> Holdout:
    sources = sorted({c.measurement.row.source_id for c in cases})
    predictions = []
    for source in sources:
        training = [c for c in cases if c.measurement.row.source_id != source]
        held = [c for c in cases if c.measurement.row.source_id == source]
        if not training:
            continue
        predictions += predict_cases(held, fit_cases(training, mode=mode), None)
    order = {c.measurement.id: n for n, c in enumerate(cases)}
    return Holdout(mode, tuple(sorted(predictions, key=lambda p: order[p.measurement.id])))


def k_fold(cases: list[RowCase], *, mode: str = "engine", folds: int = 5) -> Holdout:
    """Rows dealt into ``folds`` folds by their stable id (no randomness), each predicted by a fit to the others.

    Rows of one source land on both sides, so this says how well the fit interpolates within the
    settings it saw; leave-one-source-out says how it carries to a new lab's numbers.
    """
    fold_of = {c.measurement.id: int(c.measurement.id[:8], 16) % folds for c in cases}
    predictions = []
    for fold in range(folds):
        training = [c for c in cases if fold_of[c.measurement.id] != fold]
        held = [c for c in cases if fold_of[c.measurement.id] == fold]
        if training and held:
            predictions += predict_cases(held, fit_cases(training, mode=mode), None)
    order = {c.measurement.id: n for n, c in enumerate(cases)}
    return Holdout(f"{folds}-fold, {mode}", tuple(sorted(predictions, key=lambda p: order[p.measurement.id])))


def residual_bands(predictions) -> dict[str, tuple[float, float]]:
    """Per metric, the 10th and 90th percentile of log(predicted / measured)."""
    logs: dict[str, list[float]] = defaultdict(list)
    for p in predictions:
        logs[p.measurement.row.metric].append(float(np.log(p.predicted / p.measurement.row.value)))
    return {metric: tuple(float(q) for q in np.quantile(values, BAND_QUANTILES))
            for metric, values in sorted(logs.items()) if len(values) >= 5}


def comparison_record(comparison: Comparison) -> dict:
    """The rows, the unpredictable rows with their reasons and the summaries, as ``--json`` prints them."""
    return {
        "calibration": comparison.calibration,
        "overall": comparison.overall(),
        "summaries": {g: comparison.summaries(g) for g in GROUPINGS},
        "rows": [prediction_record(p) for p in comparison.predictions],
        "unpredictable": [{"id": u.measurement.id, "source_id": u.measurement.row.source_id,
                           "model": u.measurement.row.model, "hardware": u.measurement.row.hardware,
                           "metric": u.measurement.row.metric, "reason": u.reason,
                           "concurrency": u.concurrency} for u in comparison.unpredictable],
    }


def prediction_record(p: Prediction) -> dict:
    row = p.measurement.row
    return {"id": p.measurement.id, "source_id": row.source_id, "model_id": p.measurement.model_id,
            "hardware_id": p.measurement.hardware_id, "engine": p.engine, "device_class": p.device_class,
            "metric": row.metric, "unit": row.unit, "batch_size": row.batch_size,
            "input_tokens": row.input_tokens, "output_tokens": row.output_tokens, "technique": row.technique,
            "measured": row.value, "predicted": p.predicted, "error": p.error,
            "band": list(p.band) if p.band else None, "fit": p.fit, "assumptions": list(p.assumptions)}
