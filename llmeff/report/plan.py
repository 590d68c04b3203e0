"""The report of a plan: the recommendation, the alternatives, the Pareto front and the sources."""

from __future__ import annotations

from dataclasses import asdict, fields

from llmeff.report import plots, views
from llmeff.report.cells import Cell, Source, cell_sources, registry_points
from llmeff.report.document import Figure, Report, Section
from llmeff.report.tables import Table, columns, gb, ms, rate


def plan_request_to_dict(request) -> dict:
    data = asdict(request)
    data.pop("db")  # where the database is belongs to the machine, not to the request
    data["config"] = None if request.config is None else str(request.config)
    return data


def plan_request_from_dict(data: dict, *, db=None):
    from llmeff.errors import InvalidInputError
    from llmeff.planner.request import PlanRequest
    from llmeff.workload.request import WorkloadRequest

    known = {f.name for f in fields(PlanRequest)} - {"db"}
    if not isinstance(data, dict) or set(data) - known:
        raise InvalidInputError(f"not a plan request (unknown keys: {sorted(set(data) - known)})", field="request")
    values = dict(data)
    values["workload"] = WorkloadRequest(**values.get("workload", {}))
    for name in ("require", "exclude"):
        values[name] = tuple(values.get(name, ()))
    return PlanRequest(**values, db=db)


def _cells(result) -> list[tuple[str, object, Cell]]:
    """(name, candidate, cell) for the baseline and each ranked plan."""
    rows = [("baseline", result.baseline)] + [(f"#{i}", c) for i, c in enumerate(result.ranked, 1)]
    out = []
    for name, candidate in rows:
        e = candidate.estimate
        spec = e.roof.hardware
        out.append((name, candidate, Cell(e.workload.model, e.hardware_id, spec.name if spec else e.hardware_id,
                                          name, e, efficiency_source=result.efficiency_source,
                                          capacity_bytes=e.memory.capacity_bytes)))
    return out


def _accuracy(c) -> str:
    parts = [f"-{c.accuracy_loss:g} pts reported"] if any(o.accuracy.kind == "known" for o in c.options) else []
    if c.accuracy_unknown:
        parts.append(f"{len(c.accuracy_unknown)} unknown")
    return ", ".join(parts) or "exact"


def _plans_table(result, named) -> Table:
    price = result.price_usd_per_device_hour is not None
    rows = []
    for name, c, _ in named:
        e = c.estimate
        rows.append((name, c.label, e.ttft_s * 1e3, e.tpot_s * 1e3, e.output_tokens_per_s,
                     e.memory.footprint.total_bytes / 1e9, _accuracy(c), c.accuracy_loss, "; ".join(c.violations),
                     c.feasible, result.usd_per_million_tokens(c) if price else None))
    return Table("plans", "The recommendation (#1), the alternatives and the baseline", columns(
        ("plan", "plan"), ("techniques", "techniques", None, True), ("ttft_ms", "TTFT (ms)", ms),
        ("tpot_ms", "TPOT (ms)", ms), ("output_tokens_per_s", "tokens/s", rate), ("memory_gb", "memory (GB)", gb),
        ("accuracy", "accuracy", None, True), ("accuracy_loss_points",), ("breaks", "breaks", None, True),
        ("feasible",), ("usd_per_million_output_tokens", "$/M tokens" if price else None,
                        lambda v: f"{v:,.2f}")), tuple(rows),
        "accuracy: the loss reported for the techniques in the knowledge base (unknown stays unknown); "
        "breaks: the constraints a plan does not meet. Memory is per device.")


def _pareto_table(result) -> Table:
    rows = tuple((i, c.label, c.estimate.output_tokens_per_s, c.estimate.tpot_s * 1e3, c.accuracy_loss,
                  len(c.accuracy_unknown)) for i, c in enumerate(result.pareto, 1))
    return Table("pareto", "Pareto front: throughput against accuracy risk", columns(
        ("front", "#"), ("techniques", "techniques", None, True), ("output_tokens_per_s", "tokens/s", rate),
        ("tpot_ms", "TPOT (ms)", ms), ("accuracy_loss_points", "reported loss (pts)", lambda v: f"{v:g}"),
        ("unknown_accuracy", "unknown")), rows,
        "No feasible plan beats a front member on both throughput and (reported loss, number of techniques "
        "whose accuracy impact is unknown).")


def _choices_table(result) -> Table:
    seen = {}
    for c in (result.baseline,) + tuple(result.ranked) + tuple(result.pareto):
        for o in c.options:
            seen.setdefault(o.label, o)
    rows = tuple((label, ", ".join(o.entries), o.accuracy.kind, o.accuracy.loss_points, o.accuracy.source,
                  ", ".join(o.papers)) for label, o in sorted(seen.items()))
    return Table("choices", "Each technique choice: the knowledge-base entries it stands for and its accuracy",
                 columns(("choice", "choice", None, True), ("entries", "entries", None, True),
                         ("accuracy", "accuracy"), ("loss_points", "loss (pts)", lambda v: f"{v:g}"),
                         ("accuracy_source", "accuracy source", None, True), ("papers", "papers", None, True)),
                 rows)


def _pareto_figure(result) -> Figure | None:
    shown = {id(c): c for c in tuple(result.ranked) + tuple(result.pareto)}
    if not shown:
        return None
    place = {id(c): i for i, c in enumerate(result.pareto, 1)}
    best = result.recommendation

    def note(c) -> str:
        unknown = f" ({len(c.accuracy_unknown)} unknown)" if c.accuracy_unknown else ""
        return f"{place[id(c)]}{unknown}" if id(c) in place else ""

    points = [(note(c), c.accuracy_loss + 0.0, c.estimate.output_tokens_per_s, place.get(id(c)), c is best)
              for c in shown.values()]
    png = plots.pareto("Pareto front: throughput against accuracy risk", points,
                       "reported accuracy loss (points)", "output tokens/s")
    return Figure("pareto.png", "Feasible plans by reported accuracy loss and throughput. The front runs in the "
                                "order of its table: by reported loss, then by how many techniques of unknown "
                                "accuracy impact a plan stacks (in brackets); the recommendation is ringed.", png)


def plan_report(result, db) -> Report:
    r = result.request
    named = _cells(result)
    cells = [cell for _, _, cell in named]
    best = result.recommendation
    spec_name = cells[0].hardware_name
    w = r.workload
    summary = [f"Model {r.model or r.config} on {r.devices} x {spec_name}; batch {w.batch}, {w.prompt_tokens} "
               f"prompt + {w.output_tokens} output tokens; objective {r.objective}; {r.search} search over "
               f"{result.evaluated} candidate plans.",
               "Constraints: " + (", ".join(x for x in (
                   f"TTFT <= {r.max_ttft_ms:g} ms" if r.max_ttft_ms else "",
                   f"TPOT <= {r.max_tpot_ms:g} ms" if r.max_tpot_ms else "",
                   f"accuracy loss <= {r.accuracy_budget:g} points" if r.accuracy_budget is not None else "",
                   "fits in device memory") if x)) + ".",
               (f"Recommendation: {best.label} (TTFT {best.estimate.ttft_s * 1e3:.1f} ms, TPOT "
                f"{best.estimate.tpot_s * 1e3:.2f} ms, {best.estimate.output_tokens_per_s:,.0f} tokens/s)."
                if best else f"No plan satisfies the constraints; binding: {result.binding}."),
               f"Efficiency terms: {result.efficiency_source.split(':')[0]}."]
    sources: dict[tuple[str, str], None] = {}
    for _, candidate, cell in named:
        techniques = tuple(e for o in candidate.options for e in o.entries)
        for key in cell_sources(cell.estimate, result.efficiency_source, techniques, db):
            sources[key] = None
    for _, candidate, _ in named:
        for o in candidate.options:
            if o.accuracy.source:
                sources[(f"{o.label}: accuracy", o.accuracy.source)] = None
    registry = registry_points([cells[0].model], {cells[0].hardware}, db, calibrated=r.calibrated)
    measured = views.measured_figure(registry)
    pareto = _pareto_figure(result)
    sections = [
        Section("Recommendation and alternatives", (), (views.comparison_figure(cells, "Plans compared"),),
                (_plans_table(result, named),)),
        Section("Why", (), (), (), tuple(result.explanation)),
        Section("Pareto front", (), (pareto,) if pareto else (), (_pareto_table(result),)),
        Section("Technique choices", (), (), (_choices_table(result),)),
        Section("Rooflines", ("Baseline and plans on the same device; operators left of the ridge are "
                              "memory-bound.",), tuple(views.roofline_figures(cells)), (views.roofs_table(cells),)),
        Section("Where the time goes", (), tuple(views.breakdown_figures(cells)), (views.breakdown_table(cells),)),
        Section("Memory against capacity", (), (views.memory_figure(cells),), (views.memory_table(cells),)),
        Section("Predicted vs measured", (f"{len(registry.points)} stored measurements of this model on this "
                                          "device, each predicted for its own configuration." if registry.points
                                          else "The benchmark registry holds no predictable measurement of this "
                                               "model on this device.",),
                (measured,) if measured else (), (views.measured_table(registry),) if registry.points else ()),
        Section("Sources", (), (), (views.sources_table([Source(*k) for k in sorted(sources)]),)),
    ]
    title = f"llmeff plan: {r.model or r.config} on {r.devices} x {r.hardware}"
    return Report(title, tuple(summary), tuple(sections), (views.operators_table(cells),))
