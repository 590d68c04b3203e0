"""``llmeff bench``: the benchmark registry (import, list, export, compare, calibrate)."""

from __future__ import annotations

from pathlib import Path

import typer

from llmeff.cli import render
from llmeff.cli.options import JSON, db_path

app = typer.Typer(help="Measured results: import, list, export, predicted vs measured, calibration.",
                  no_args_is_help=True)

MODEL = typer.Option(None, "--model", help="Model id, alias, or part of the name a source wrote.")
HARDWARE = typer.Option(None, "--hardware", help="Hardware id, alias, or part of the name a source wrote.")
METRIC = typer.Option(None, "--metric", help="e.g. decode_tokens_per_s, ttft_ms, throughput_tokens_per_s.")
TECHNIQUE = typer.Option(None, "--technique", help="Part of a technique label, e.g. fp8 or tensor-parallel.")
SOURCE = typer.Option(None, "--source", help="Source id, or its beginning (e.g. trtllm).")
ENGINE = typer.Option(None, "--engine", help="Part of the engine name, e.g. llama.cpp.")
ORIGIN = typer.Option(None, "--origin", help="'shipped' (the built-in registry) or 'user' (imported).")


def _filter(model, hardware, metric, technique, source, engine, origin):
    from llmeff.benchmarks.registry import MeasurementFilter

    return MeasurementFilter(model=model, hardware=hardware, metric=metric, technique=technique, source=source,
                             engine=engine, origin=origin)


def _number(value: float) -> str:
    return f"{value:.4g}"


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="A .csv or .json file in the format of data/measurements/README.md."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Check and count, store nothing."),
    json: bool = JSON,
) -> None:
    """Import measurements: every name must resolve, and the whole file goes in one transaction.

    Example: llmeff bench import my-runs.csv --dry-run
    """
    from llmeff.benchmarks.ingest import import_measurements

    result = import_measurements(file, db=db_path(ctx), dry_run=dry_run)
    if json:
        render.emit_json(result)
        return
    verb = "would add" if dry_run else "added"
    render.console.print(
        f"{result.file}: {result.rows} rows; {verb} {result.added}, {result.already_stored} already stored"
        + (f", {result.repeated_in_file} repeated within the file" if result.repeated_in_file else "")
        + f"; registry {result.measurements_before} -> {result.measurements_after} measurements", highlight=False)


@app.command("list")
def list_(
    ctx: typer.Context, model: str = MODEL, hardware: str = HARDWARE, metric: str = METRIC,
    technique: str = TECHNIQUE, source: str = SOURCE, engine: str = ENGINE, origin: str = ORIGIN, json: bool = JSON,
) -> None:
    """List stored measurements with their provenance ('-' = not stated by the source).

    Example: llmeff bench list --hardware 'RTX 4090' --metric decode_tokens_per_s
    """
    from llmeff.benchmarks.registry import stored_measurements

    rows = stored_measurements(db_path(ctx), _filter(model, hardware, metric, technique, source, engine, origin))
    if json:
        render.emit_json([{"id": m.id, "origin": m.origin, "model_id": m.model_id, "hardware_id": m.hardware_id,
                           **m.row.to_dict()} for m in rows])
        return
    # a column every row shares moves into the title, so the rest fit a laptop terminal
    columns = {
        "id": lambda m: m.id[:8], "source": lambda m: m.row.source_id,
        "model": lambda m: m.model_id or f"? {m.row.model[:24]}",
        "hardware": lambda m: (f"{m.row.device_count}x " if m.row.device_count > 1 else "")
        + (m.hardware_id or f"? {m.row.hardware[:24]}"),
        "technique": lambda m: _clip(m.row.technique, 24), "batch": lambda m: m.row.batch_size,
        "in/out": lambda m: f"{_blank(m.row.input_tokens)}/{_blank(m.row.output_tokens)}",
        "metric": lambda m: m.row.metric, "value": lambda m: f"{_number(m.row.value)} {m.row.unit}",
    }
    shared = [name for name in ("source", "metric") if rows and len({columns[name](m) for m in rows}) == 1]
    shown = [name for name in columns if name not in shared]
    title = f"{len(rows)} measurements" + "".join(f", {name} {columns[name](rows[0])}" for name in shared)
    render.table(
        title, shown, [tuple(columns[name](m) for name in shown) for m in rows],
        caption="'? name' = a name the registries do not resolve (llmeff bench compare lists why); "
                "'-' = not stated by the source. Engine, dtypes and every other field: --json or llmeff bench export",
    )


def _clip(text: str | None, width: int) -> str | None:
    return text if text is None or len(text) <= width else text[:width - 1] + "…"


def _blank(value) -> str:
    return "-" if value is None else str(value)


@app.command()
def export(
    ctx: typer.Context, model: str = MODEL, hardware: str = HARDWARE, metric: str = METRIC,
    technique: str = TECHNIQUE, source: str = SOURCE, engine: str = ENGINE, origin: str = ORIGIN,
    format: str = typer.Option("csv", "--format", help="csv or json (both re-import with llmeff bench import)."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: standard output)."),
) -> None:
    """Write measurements in the import format.

    Example: llmeff bench export --source trtllm --format json -o trtllm.json
    """
    from llmeff.benchmarks.api import export_measurements
    from llmeff.benchmarks.registry import stored_measurements

    rows = stored_measurements(db_path(ctx), _filter(model, hardware, metric, technique, source, engine, origin))
    text = export_measurements(rows, format)
    if output is None:
        print(text, end="")
        return
    from llmeff.benchmarks.api import write_atomically

    write_atomically(output, text)
    render.console.print(f"Wrote {len(rows)} measurements to {output}", highlight=False)


@app.command()
def compare(
    ctx: typer.Context,
    file: Path = typer.Argument(None, help="Compare a file's measurements instead of the registry's (not stored)."),
    model: str = MODEL, hardware: str = HARDWARE, metric: str = METRIC, technique: str = TECHNIQUE,
    source: str = SOURCE, engine: str = ENGINE, origin: str = ORIGIN,
    uncalibrated: bool = typer.Option(False, "--uncalibrated", help="Ignore the stored calibration."),
    summary_only: bool = typer.Option(False, "--summary-only", help="Skip the per-row table."),
    json: bool = JSON,
) -> None:
    """Predict every measurement's configuration and compare: per row, then by metric, hardware, technique, engine.

    Error = predicted / measured - 1; bias > 0 means the model predicts a larger number than measured.
    Example: llmeff bench compare --metric decode_tokens_per_s
    """
    from llmeff.benchmarks.api import compare_measurements
    from llmeff.benchmarks.compare import comparison_record

    where = _filter(model, hardware, metric, technique, source, engine, origin)
    result = compare_measurements(db_path(ctx), where, file, calibrated=not uncalibrated)
    if json:
        render.emit_json(comparison_record(result))
        return
    if not summary_only and result.predictions:
        _prediction_table(result)
    _unpredictable(result)
    render.console.print(f"Predictions: {result.calibration}", highlight=False)
    if not result.predictions:
        render.console.print("No row could be predicted: the reasons are listed above.", highlight=False)
        return
    _summary_tables(result)


def _prediction_table(result) -> None:
    render.table(
        f"Predicted vs measured ({len(result.predictions)} rows)",
        ["id", "source", "model", "hardware", "engine", "metric", "batch", "in/out", "measured", "predicted",
         "error", "80% band"],
        [(p.measurement.id[:10], p.measurement.row.source_id, p.measurement.model_id, p.measurement.hardware_id,
          p.engine, p.measurement.row.metric, p.measurement.row.batch_size,
          f"{p.measurement.row.input_tokens}/{p.measurement.row.output_tokens}", _number(p.measurement.row.value),
          _number(p.predicted), f"{100 * p.error:+.0f}%",
          f"{_number(p.band[0])}-{_number(p.band[1])}" if p.band else "-") for p in result.predictions],
        caption="Assumptions and the fit each row used: --json",
    )


def _unpredictable(result) -> None:
    from collections import Counter

    if not result.unpredictable:
        return
    reasons = Counter(u.reason for u in result.unpredictable)
    flagged = sum(1 for u in result.unpredictable if u.concurrency)
    render.table(
        f"{len(result.unpredictable)} rows not predicted ({flagged} flagged as measured under concurrency)",
        ["rows", "reason"], sorted(((n, r) for r, n in reasons.items()), key=lambda x: (-x[0], x[1])),
        wrap=("reason",), caption="The rows themselves: --json (key 'unpredictable')",
    )


def _summary_tables(result) -> None:
    from llmeff.benchmarks.compare import GROUPINGS

    overall = result.overall()
    render.console.print(
        f"All {overall.rows} predicted rows: median absolute error {overall.mdape:.1f}%, mean {overall.mape:.1f}%, "
        f"bias {overall.bias:+.1f}%", highlight=False)
    for grouping in GROUPINGS:
        render.table(
            f"By {grouping}", [grouping, "rows", "MdAPE %", "MAPE %", "bias %", "worst rows"],
            [(s.key, s.rows, f"{s.mdape:.1f}", f"{s.mape:.1f}", f"{s.bias:+.1f}", " ".join(w[:10] for w in s.worst))
             for s in result.summaries(grouping)],
        )


@app.command()
def calibrate(
    ctx: typer.Context,
    mode: str = typer.Option("engine", "--mode",
                             help="engine (device-class + engine factors), engine+device, device, or global."),
    holdout: bool = typer.Option(False, "--holdout",
                                 help="Also report leave-one-source-out error, and the one-global-pair baseline."),
    json: bool = JSON,
) -> None:
    """Fit the cost model's efficiency terms to the registry and store the fit; predictions then use it.

    Example: llmeff bench calibrate --holdout
    """
    from llmeff.benchmarks.api import calibrate as run

    report = run(db_path(ctx), mode=mode, holdout=holdout)
    if json:
        render.emit_json(report.record())
        return
    fit = report.fit
    render.console.print(f"Calibrated ({fit.mode}) on {report.fitted_rows} rows; stored in the database.",
                         highlight=False)
    render.table(
        "Efficiency predictions now use, per device and engine fitted",
        ["hardware", "class fit", "engine fit", "rows", "compute", "bandwidth", "kernel/step/request"],
        [(e["hardware"], e["device_class"] if e["class_fitted"] else "-", e["engine"] if e["engine_fitted"] else "-",
          e["rows"], f"{e['compute_fraction']:.2f}", f"{e['bandwidth_fraction']:.2f}",
          f"{e['kernel_overhead_s'] * 1e6:.1f}us/{e['step_overhead_s'] * 1e3:.2f}ms/{e['request_overhead_s'] * 1e3:.1f}ms")
         for e in report.effective()],
        caption="compute, bandwidth: achievable fractions of the peak; '-': no fit for that group (published default). "
                "Which fit each prediction uses, in words: --json (key 'effective')",
    )
    evaluations = [("fit", report.fit_comparison)]
    if report.holdout:
        evaluations += [("5-fold", report.folds.comparison()), ("left-out source", report.holdout.comparison()),
                        ("baseline", report.baseline.comparison())]
    render.table(
        "Median absolute error (%) by metric", ["metric", "rows", *(label for label, _ in evaluations)],
        [("all", report.fitted_rows, *(f"{c.overall().mdape:.1f}" for _, c in evaluations))]
        + [(m, report.metric_rows(m), *(report.metric_mdape(c, m) for _, c in evaluations)) for m in report.metrics()],
        caption="fit: on the rows it was fitted to. 5-fold: rows dealt into 5 folds, each predicted by a fit to the "
                "others. left-out source: each source predicted by a fit that never saw it (judge a calibration by "
                "this). baseline: one global pair of efficiency factors, left out the same way."
        if report.holdout else "Error on rows left out of the fit: --holdout",
    )
