"""``llmeff plan``: the combination of techniques that serves a model, device and workload best."""

from __future__ import annotations

from pathlib import Path

import typer

from llmeff import units
from llmeff.cli import render
from llmeff.cli.options import JSON, db_path


def plan(
    ctx: typer.Context,
    model: str = typer.Option(None, help="Model id or alias from 'llmeff models list'."),
    config: Path = typer.Option(None, help="A Hugging Face config.json instead of --model."),
    hardware: str = typer.Option(..., help="Hardware id or alias from 'llmeff hardware list'."),
    devices: int = typer.Option(1, help="Devices one model instance may span (tensor parallelism)."),
    batch: int = typer.Option(1, help="Sequences processed together."),
    prompt_tokens: int = typer.Option(512, help="Prompt length per sequence."),
    output_tokens: int = typer.Option(128, help="Generated tokens per sequence."),
    max_ttft_ms: float = typer.Option(None, help="Time-to-first-token limit."),
    max_tpot_ms: float = typer.Option(None, help="Time-per-output-token limit."),
    accuracy_budget: float = typer.Option(None, help="Accepted accuracy loss in points (from reported results)."),
    objective: str = typer.Option("throughput", help="throughput, tpot, ttft, memory, or cost (needs a price)."),
    price_per_device_hour: float = typer.Option(
        None, help="USD per device-hour for cost per token (else the hardware record's price, if it has one)."),
    top: int = typer.Option(3, help="How many plans to show."),
    require: list[str] = typer.Option([], help="Technique every plan must contain (repeatable)."),
    exclude: list[str] = typer.Option([], help="Technique entry no plan may contain, or a plugin id to drop every entry using it (repeatable)."),
    search: str = typer.Option("greedy", help="greedy, or exhaustive (every combination, up to --max-candidates)."),
    max_candidates: int = typer.Option(20000, help="Exhaustive search stops after this many candidates."),
    engine: str = typer.Option(None, help="Engine the calibration's factors are taken for (after llmeff bench "
                                          "calibrate; default: stated)."),
    uncalibrated: bool = typer.Option(False, "--uncalibrated", help="Ignore the stored calibration."),
    report: Path = typer.Option(None, help="Also write the plan's report folder (as 'llmeff report' does) here."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier report in --report."),
    json: bool = JSON,
) -> None:
    """Recommend techniques for a model, device and workload under constraints, and say why.

    Example: llmeff plan --model llama-2-70b --hardware a100-sxm4-80gb --devices 4 --batch 16
    --prompt-tokens 2048 --output-tokens 256 --max-tpot-ms 50 --max-ttft-ms 6000 --accuracy-budget 1.0
    """
    from llmeff.planner.request import PlanRequest
    from llmeff.planner.search import plan as run
    from llmeff.planner.search import plan_to_dict
    from llmeff.workload.request import WorkloadRequest

    request = PlanRequest(
        hardware=hardware, model=model, config=config, devices=devices,
        workload=WorkloadRequest(batch, prompt_tokens, output_tokens),
        max_ttft_ms=max_ttft_ms, max_tpot_ms=max_tpot_ms, accuracy_budget=accuracy_budget, objective=objective,
        price_usd_per_device_hour=price_per_device_hour,
        top=top, require=tuple(require), exclude=tuple(exclude), search=search, max_candidates=max_candidates,
        engine=engine, calibrated=not uncalibrated, db=db_path(ctx),
    )
    if report is not None:
        from llmeff.report.build import check_target

        check_target(report, force=force)  # before the search: a bad folder should not cost a plan
    # a bar only on a terminal: pipes and files get the answer alone
    with render.progress_bar("evaluating candidate plans", enabled=not json) as tick:
        result = run(request, progress=tick)
    if json:
        render.emit_json(plan_to_dict(result))
    else:
        _print(result, objective)
    if report is not None:
        from llmeff.report.build import write_plan_report

        built = write_plan_report(result, report, db=db_path(ctx), force=force)
        if not json:
            render.console.print(f"Wrote the plan's report to {built.path} ({len(built.files)} files)",
                                 highlight=False)
    if result.recommendation is None:
        raise typer.Exit(1)  # scripts can tell "nothing satisfies the constraints" from a plan


def _print(result, objective: str) -> None:
    rows = [("baseline", result.baseline)] + [(f"#{i}", c) for i, c in enumerate(result.ranked, 1)]
    priced = result.price_usd_per_device_hour is not None
    render.table(
        f"{result.evaluated} candidate plans evaluated; objective {objective}",
        ["plan", "TTFT", "TPOT", "tokens/s", "memory", "accuracy", "breaks"] + (["$/M tokens"] if priced else []),
        [(name, *_figures(c)) + ((f"{result.usd_per_million_tokens(c):,.2f}",) if priced else ()) for name, c in rows],
    )
    render.bullet_list("Plans", [f"{name}: {c.label}" for name, c in rows[1:]])
    if result.baseline.violations:
        render.bullet_list("The baseline breaks", result.baseline.violations)
    if result.recommendation is None:
        render.console.print(f"[bold red]No plan satisfies the constraints.[/bold red] Binding: {result.binding}",
                             highlight=False)
    render.bullet_list("Pareto front, speed against accuracy risk",
                       [f"{' / '.join(_figures(c)[:3])}, {_accuracy(c)}: {c.label}" for c in result.pareto])
    best = result.recommendation
    if best is not None and result.request.accuracy_budget is None and any(
            o.accuracy.kind != "exact" for o in best.options):
        render.console.print(f"Note: no --accuracy-budget was given, so the plan may stack lossy techniques; this "
                             f"one's accuracy: {_accuracy(best)}.", highlight=False)
    subject = "the recommendation" if best else "the closest plan"
    render.bullet_list(f"Why ({subject}'s settings in full)", result.explanation)
    render.console.print(f"Efficiency terms: {result.efficiency_source}", highlight=False)


def _figures(c) -> tuple[str, ...]:
    e = c.estimate
    broken = ", ".join(v.split(":")[0] for v in c.violations) or "-"  # names only; the list below has the numbers
    return (f"{e.ttft_s * 1e3:.1f} ms", f"{e.tpot_s * 1e3:.2f} ms", f"{e.output_tokens_per_s:,.0f}",
            units.bytes_(e.memory.footprint.total_bytes), _accuracy(c), broken)


def _accuracy(c) -> str:
    kinds = {o.accuracy.kind for o in c.options}
    parts = [f"reported -{c.accuracy_loss:g} pts"] if "known" in kinds else []
    if c.accuracy_unknown:
        parts.append(f"{len(c.accuracy_unknown)} unknown")
    return ", ".join(parts) or "exact"
