"""``llmeff report``: a shareable, reproducible comparison of technique combinations."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from llmeff.cli import render
from llmeff.cli.options import db_path


def report(
    ctx: typer.Context,
    model: list[str] = typer.Option([], help="Model id or alias (repeatable)."),
    config: list[Path] = typer.Option([], help="A Hugging Face config.json of a model not in the registry "
                                               "(repeatable)."),
    hardware: list[str] = typer.Option([], help="Hardware id or alias (repeatable)."),
    technique: list[str] = typer.Option(
        [], "--technique", "-t",
        help="A combination to compare with the baseline: techniques joined by '+', parameters after ':' "
             "(e.g. 'awq + flash-attention'). Repeatable: one combination each."),
    batch: int = typer.Option(1, help="Sequences processed together."),
    prompt_tokens: int = typer.Option(512, help="Prompt length per sequence."),
    output_tokens: int = typer.Option(128, help="Generated tokens per sequence."),
    weight_dtype: str = typer.Option("fp16", help="Weight storage precision."),
    activation_dtype: str = typer.Option("fp16", help="Compute precision; picks the hardware peak."),
    kv_dtype: str = typer.Option(None, help="KV-cache precision (default: the activation precision)."),
    engine: str = typer.Option(None, help="Engine the calibration's factors are taken for (default: stated)."),
    uncalibrated: bool = typer.Option(False, "--uncalibrated", help="Ignore the stored calibration."),
    title: str = typer.Option(None, help="The report's title."),
    spec: Path = typer.Option(None, help="A saved request (report.toml) instead of the options above."),
    out: Path = typer.Option(None, help="The folder to write (created; must be new or empty, or use --force)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier report in --out."),
    check: Path = typer.Option(None, help="Rebuild the report in this folder from its manifest and compare bytes."),
) -> None:
    """Write a report folder: report.md, a self-contained report.html, CSVs and PNG figures, manifest.json.

    Example: llmeff report --model llama-2-7b --hardware a100-sxm4-80gb --hardware h100-sxm-80gb
    --technique awq --technique 'flash-attention + paged-kv' --batch 8 --prompt-tokens 1024 --output-tokens 256
    --out reports/llama-2-7b
    """
    from llmeff.report import build

    if check is not None:
        if out is not None or spec is not None or model or config or hardware or technique:
            raise typer.BadParameter("--check takes only the folder: the manifest holds the request",
                                     param_hint="--check")
        _check(build.check_report(check, db=db_path(ctx), progress=None))
        return
    if out is None:
        raise typer.BadParameter("give the folder to write the report into", param_hint="--out")
    request = _request(spec, model, config, hardware, technique, batch, prompt_tokens, output_tokens, weight_dtype,
                       activation_dtype, kv_dtype, engine, uncalibrated, title)
    start = time.perf_counter()
    with render.progress_bar("building the report") as tick:
        built = build.build_report(request, out, db=db_path(ctx), force=force, progress=tick)
    seconds = time.perf_counter() - start
    names = built.files
    render.console.print(
        f"Wrote {built.path}: report.md, report.html, {sum(n.endswith('.csv') for n in names)} CSV files, "
        f"{sum(n.endswith('.png') for n in names)} figures, manifest.json ({seconds:.1f} s)", highlight=False)
    render.bullet_list("Summary", built.report.summary)


def _request(spec, model, config, hardware, technique, batch, prompt_tokens, output_tokens, weight_dtype, activation_dtype,
             kv_dtype, engine, uncalibrated, title):
    from llmeff.report.request import Combination, ReportRequest, load_spec
    from llmeff.workload.request import WorkloadRequest

    if spec is not None:
        if model or config or hardware or technique:
            raise typer.BadParameter("give --spec or --model/--hardware/--technique, not both", param_hint="--spec")
        return load_spec(spec)
    return ReportRequest(tuple(model), tuple(hardware), tuple(Combination.parse(t) for t in technique),
                         WorkloadRequest(batch, prompt_tokens, output_tokens, weight_dtype, activation_dtype, kv_dtype),
                         engine, not uncalibrated, title, tuple(str(c) for c in config))


def _check(result) -> None:
    if result.identical:
        render.console.print(f"Identical: {result.path} matches a rebuild from its manifest, byte for byte.",
                             highlight=False)
        return
    render.bullet_list(f"{result.path} differs from a rebuild from its manifest", result.differences)
    render.bullet_list("Inputs that changed since it was built", result.changed_inputs)
    raise typer.Exit(1)
