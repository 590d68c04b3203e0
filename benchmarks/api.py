"""The benchmark registry's library API, which ``llmeff bench`` is a thin layer over."""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass

from llmeff.benchmarks.calibrate import MODES, Fit, fit as fit_cases
from llmeff.benchmarks.compare import (Comparison, Holdout, compare, k_fold, leave_one_source_out, predict_cases,
                                      residual_bands)
from llmeff.benchmarks.fits import StoredFit, load_fit, registry_digest, save_fit
from llmeff.benchmarks.predict import RowCase, prepare
from llmeff.benchmarks.records import COLUMNS
from llmeff.benchmarks.registry import MeasurementFilter, StoredMeasurement, file_measurements, stored_measurements
from llmeff.errors import InvalidInputError

Db = str | os.PathLike[str] | None


def compare_measurements(db: Db = None, where: MeasurementFilter = MeasurementFilter(),
                         file: str | os.PathLike[str] | None = None, *, calibrated: bool = True) -> Comparison:
    """Predicted vs measured for the registry's rows (or a file's, not stored), with the stored fit if any."""
    from llmeff.kb.api import open_kb

    stored = load_fit(db) if calibrated else None
    with open_kb(db) as kb:
        measurements = _file_rows(file, db) if file is not None else stored_measurements(db, where)
        return compare(measurements, kb, stored.fit if stored else None,
                       stored.summary.get("bands") if stored else None)


def _file_rows(file, db: Db) -> list[StoredMeasurement]:
    from contextlib import closing

    from llmeff import db as database
    from llmeff.benchmarks.ingest import index_from_connection
    from llmeff.benchmarks.records import read_measurement_file

    parsed = read_measurement_file(file)
    with closing(database.connect(db)) as conn:
        return file_measurements(parsed, index_from_connection(conn))


@dataclass(frozen=True)
class CalibrationReport:
    fit: Fit
    fitted_rows: int
    fit_comparison: Comparison  # predictions of the rows it was fitted on
    holdout: Holdout | None
    baseline: Holdout | None  # one global pair of factors, left out the same way
    cases: tuple[RowCase, ...] = ()
    folds: Holdout | None = None  # 5-fold by row: interpolation within the sources seen

    def metrics(self) -> list[str]:
        return sorted({p.measurement.row.metric for p in self.fit_comparison.predictions})

    @staticmethod
    def metric_mdape(comparison: Comparison, metric: str) -> str:
        found = [s for s in comparison.summaries("metric") if s.key == metric]
        return f"{found[0].mdape:.1f}" if found else "-"

    def metric_rows(self, metric: str) -> int:
        return sum(1 for p in self.fit_comparison.predictions if p.measurement.row.metric == metric)

    def effective(self) -> list[dict]:
        """Per device and engine the fit saw: the efficiency predictions use, and which fit it came from."""
        seen: dict[tuple[str, str], list[RowCase]] = {}
        for case in self.cases:
            seen.setdefault((case.spec.id, case.engine), []).append(case)
        out = []
        for (hardware, engine), group in sorted(seen.items()):
            e, which = self.fit.efficiency_for(group[0].spec, group[0].device_class, engine)
            klass = group[0].device_class
            out.append({"hardware": hardware, "engine": engine, "rows": len(group), "device_class": klass,
                        "class_fitted": klass in self.fit.classes or hardware in self.fit.devices,
                        "engine_fitted": engine in self.fit.engines,
                        "compute_fraction": e.compute_fraction, "bandwidth_fraction": e.bandwidth_fraction,
                        "kernel_overhead_s": e.kernel_overhead_s, "step_overhead_s": e.step_overhead_s,
                        "request_overhead_s": e.request_overhead_s, "fit": which})
        return out

    def record(self) -> dict:
        def evaluation(c: Comparison) -> dict:
            return {"overall": c.overall(), "by_metric": c.summaries("metric"), "by_source": c.summaries("source"),
                    "by_engine": c.summaries("engine")}

        return {"mode": self.fit.mode, "fitted_rows": self.fitted_rows, "parameters": self.fit.to_json(),
                "effective": self.effective(), "fit": evaluation(self.fit_comparison),
                "holdout": evaluation(self.holdout.comparison()) if self.holdout else None,
                "baseline": evaluation(self.baseline.comparison()) if self.baseline else None,
                "k_fold": evaluation(self.folds.comparison()) if self.folds else None}


def calibrate(db: Db = None, *, mode: str = "engine", holdout: bool = False) -> CalibrationReport:
    """Fit the efficiency terms to every predictable, non-concurrent stored measurement, and store the fit."""
    from llmeff.kb.api import open_kb

    if mode not in MODES:
        raise InvalidInputError(f"must be one of {', '.join(MODES)}, got '{mode}'", field="mode")
    with open_kb(db) as kb:
        cases = [c for c in prepare(stored_measurements(db), kb) if isinstance(c, RowCase)]
        if not cases:
            raise InvalidInputError("the registry holds no measurement the cost model can predict", field="rows")
        fitted = fit_cases(cases, mode=mode)
        held = leave_one_source_out(cases, mode=mode) if holdout else None
        baseline = leave_one_source_out(cases, mode="global") if holdout else None
        folds = k_fold(cases, mode=mode) if holdout else None
        in_sample = Comparison(tuple(predict_cases(cases, fitted, None)), (), f"fit ({mode})")
    # the band comes from the left-out residuals when they were computed: the honest spread
    bands = held.bands() if held else residual_bands(in_sample.predictions)
    summary = {"mode": mode, "bands": bands, "fit_mdape": in_sample.overall().mdape,
               "holdout_mdape": held.comparison().overall().mdape if held else None}
    rows = [[p.measurement.id, round(float(p.predicted / p.measurement.row.value), 6)]
            for p in in_sample.predictions]
    save_fit(db, StoredFit(fitted, registry_digest(c.measurement.id for c in cases), rows, summary))
    return CalibrationReport(fitted, len(cases), in_sample, held, baseline, tuple(cases), folds)


def export_measurements(measurements: list[StoredMeasurement], fmt: str) -> str:
    """The rows in the import format (CSV, or JSON ``{"measurements": [...]}``): export then import round-trips."""
    records = [{name: _value(m, name) for name in COLUMNS} for m in measurements]
    if fmt == "json":
        return json.dumps({"measurements": [{k: v for k, v in r.items() if v is not None} for r in records]},
                          indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in records:
            writer.writerow({k: "" if v is None else _csv_number(v) for k, v in r.items()})
        return out.getvalue()
    raise InvalidInputError(f"must be 'csv' or 'json', got '{fmt}'", field="format")


def _value(m: StoredMeasurement, name: str):
    return getattr(m.row, name)


def _csv_number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 80, not 80.0: as sources write it
    return repr(value) if isinstance(value, float) else str(value)


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file: a failure leaves no half-written file."""
    import tempfile
    from pathlib import Path

    target = Path(path)
    if target.is_dir():
        raise InvalidInputError(f"'{target}' is a directory; give a file name", field="output")
    if not target.parent.exists():
        raise InvalidInputError(f"folder '{target.parent}' does not exist", field="output")
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
