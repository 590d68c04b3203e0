"""``llmeff.plan``: search combinations of technique options, predict each, filter, rank, explain."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from llmeff.errors import InvalidInputError, LlmeffError
from llmeff.planner.options import Accuracy, Option, build_options
from llmeff.planner.request import PlanRequest
from llmeff.roofline import Estimate, estimate
from llmeff.techniques.pipeline import apply_techniques


MULTI_DEVICE = frozenset({"tensor-parallel", "pipeline-parallel", "pd-disaggregation"})
# Their effect is a statistic of the requests, not a choice: cache hit ratio, output-length mix, draft
# acceptance, answer structure, routing locality. The planner never assumes one.
WORKLOAD_DEPENDENT = frozenset({"prefix-caching", "continuous-batching", "speculative-decoding",
                                "parallel-output-decoding", "expert-offloading", "contextual-sparsity"})
MIN_GAIN = 0.01  # greedy adds a technique only if it improves the objective by at least 1%


@dataclass(frozen=True)
class Candidate:
    options: tuple[Option, ...]
    estimate: Estimate
    violations: tuple[str, ...]  # constraints it breaks ("" when it satisfies them all)
    accuracy_loss: float  # known loss, in accuracy points
    accuracy_unknown: tuple[str, ...]  # options whose accuracy impact is unknown

    @property
    def feasible(self) -> bool:
        return not self.violations

    @property
    def label(self) -> str:
        return " + ".join(o.label for o in self.options) or "(no technique)"


@dataclass(frozen=True)
class PlanResult:
    request: PlanRequest
    baseline: Candidate
    ranked: tuple[Candidate, ...]  # feasible first, best first
    evaluated: int
    explanation: tuple[str, ...]
    binding: str | None = None  # when nothing is feasible: the constraint the best candidate still breaks
    pareto: tuple[Candidate, ...] = field(default_factory=tuple)
    price_usd_per_device_hour: float | None = None  # the request's, else the hardware record's
    efficiency_source: str = ""  # the published default or the stored calibration, and which fit

    def usd_per_million_tokens(self, c: Candidate) -> float | None:
        return _usd_per_million_tokens(c, self.price_usd_per_device_hour)

    @property
    def recommendation(self) -> Candidate | None:
        return self.ranked[0] if self.ranked and self.ranked[0].feasible else None


def plan_to_dict(result: PlanResult) -> dict:
    """The JSON form of a plan (the CLI prints exactly this; sorted keys via llmeff.serialize)."""

    def candidate(c: Candidate) -> dict:
        e = c.estimate
        return {
            "techniques": [{"plugin": o.plugin_id, "params": o.params.to_dict(), "entries": list(o.entries),
                            "accuracy": o.accuracy.kind, "accuracy_loss_points": o.accuracy.loss_points,
                            "accuracy_source": o.accuracy.source, "papers": list(o.papers)} for o in c.options],
            "feasible": c.feasible, "violations": list(c.violations),
            "ttft_s": e.ttft_s, "tpot_s": e.tpot_s, "e2e_latency_s": e.e2e_latency_s,
            "output_tokens_per_s": e.output_tokens_per_s, "memory_bytes": e.memory.footprint.total_bytes,
            "memory_capacity_bytes": e.memory.capacity_bytes, "devices": e.workload.devices,
            "accuracy_loss_points": c.accuracy_loss, "accuracy_unknown": list(c.accuracy_unknown),
            "usd_per_million_output_tokens": result.usd_per_million_tokens(c),
        }

    r = result.request
    return {
        "request": {"model": r.model, "config": None if r.config is None else str(r.config), "hardware": r.hardware,
                    "devices": r.devices, "objective": r.objective, "search": r.search,
                    "price_usd_per_device_hour": result.price_usd_per_device_hour,
                    "max_ttft_ms": r.max_ttft_ms, "max_tpot_ms": r.max_tpot_ms, "accuracy_budget": r.accuracy_budget,
                    "batch": r.workload.batch, "prompt_tokens": r.workload.prompt_tokens,
                    "output_tokens": r.workload.output_tokens},
        "baseline": candidate(result.baseline),
        "recommendation": candidate(result.recommendation) if result.recommendation else None,
        "ranked": [candidate(c) for c in result.ranked],
        "pareto": [candidate(c) for c in result.pareto],
        "explanation": list(result.explanation),
        "binding_constraint": result.binding,
        "evaluated": result.evaluated,
        "efficiency_source": result.efficiency_source,
    }


def plan(request: PlanRequest, *, progress: Callable[[int, int], None] | None = None) -> PlanResult:
    """The best combination of techniques for the request, with runners-up and the reasons."""
    from llmeff.analysis import _load_model  # the same model resolution as llmeff.analyze
    from llmeff.kb.api import open_kb
    from llmeff.workload.build import build_workload

    request.validate()
    with open_kb(request.db) as kb:
        spec = kb.hardware(request.hardware)
        if request.calibrated:
            from llmeff.benchmarks.fits import calibrated_spec

            spec = calibrated_spec(request.db, spec, request.engine)
        price = request.price_usd_per_device_hour or spec.price_usd_per_hour
        if request.objective == "cost" and price is None:
            raise InvalidInputError(f"objective 'cost' needs a price: hardware '{spec.id}' has none in the registry; "
                                    "give --price-per-device-hour USD", field="price_per_device_hour")
        arch, label = _load_model(kb, request.model, request.config)
        base = build_workload(arch, request.workload, model=label)
        options = build_options(kb, base, spec, exclude=request.exclude)
        required = _required(kb, options, request, spec, base)
        conflicts = _conflicts(kb, options)
    evaluate = _Evaluator(base, spec, request, price)
    baseline = evaluate(())
    # techniques that spread one instance over devices come only from --devices (as a required choice);
    # techniques whose gain rests on a property of the traffic come only from --require (the user knows it)
    free = [o for o in options
            if o.plugin_id not in {r.plugin_id for r in required} | MULTI_DEVICE | WORKLOAD_DEPENDENT]
    if request.accuracy_budget is not None:
        # with a budget, only choices whose accuracy cost is known (or nil by construction) can be shown to fit it
        free = [o for o in free if o.accuracy.kind != "unknown"]
    if request.search == "greedy":
        candidates = _greedy(evaluate, required, free, conflicts, progress)
    else:
        candidates = _exhaustive(evaluate, required, free, conflicts, request.max_candidates, progress)
    ranked = tuple(sorted(candidates, key=evaluate.rank_key))
    best = ranked[0]
    binding = None if best.feasible else best.violations[0]
    shown = _distinct(ranked, max(request.top, 1))
    return PlanResult(request, baseline, shown, evaluate.count,
                      _explain(evaluate, best), binding, _pareto(ranked), price, spec.efficiency.source)


class _Evaluator:
    """Applies an option set to the plain workload and scores it; remembers what it has seen."""

    def __init__(self, base, spec, request: PlanRequest, price: float | None = None):
        self.base, self.spec, self.request, self.price = base, spec, request, price
        self.count = 0
        self.cache: dict[tuple, Candidate | None] = {}
        self.phase_memo: dict = {}  # siblings that leave the phases untouched share their estimates

    def __call__(self, options: tuple[Option, ...]) -> Candidate | None:
        key = tuple(sorted(o.label for o in options))
        if key in self.cache:
            return self.cache[key]
        try:
            workload = apply_techniques(self.base, self.spec, [(o.plugin, o.params) for o in options])
        except LlmeffError:
            self.count += 1
            self.cache[key] = None  # a combination the plugins refuse
            return None
        return self.from_workload(options, workload)

    def from_workload(self, options: tuple[Option, ...], workload) -> Candidate | None:
        """A candidate from a workload the options were already applied to (the exhaustive walk's leaves)."""
        key = tuple(sorted(o.label for o in options))
        if key in self.cache:
            return self.cache[key]
        self.count += 1
        try:
            result = estimate(workload, self.spec, memo=self.phase_memo)
        except LlmeffError:
            self.cache[key] = None
            return None
        candidate = Candidate(tuple(sorted(options, key=lambda o: o.label)), result, self._violations(result, options),
                              sum(o.accuracy.loss_points for o in options),
                              tuple(o.label for o in options if o.accuracy.kind == "unknown"))
        self.cache[key] = candidate
        return candidate

    def _violations(self, result: Estimate, options) -> tuple[str, ...]:
        r, broken = self.request, []
        if result.memory.fits is False:
            m = result.memory
            broken.append(f"memory: needs {m.footprint.total_bytes / 1e9:.1f} GB of {m.capacity_bytes / 1e9:.1f} GB")
        if r.max_ttft_ms is not None and result.ttft_s * 1e3 > r.max_ttft_ms:
            broken.append(f"TTFT: {result.ttft_s * 1e3:.1f} ms > {r.max_ttft_ms:g} ms")
        if r.max_tpot_ms is not None and result.tpot_s * 1e3 > r.max_tpot_ms:
            broken.append(f"TPOT: {result.tpot_s * 1e3:.2f} ms > {r.max_tpot_ms:g} ms")
        if r.accuracy_budget is not None:
            # only a reported loss can break the budget; an unknown impact is shown as risk, never taken as zero
            loss = sum(o.accuracy.loss_points for o in options)
            if loss > r.accuracy_budget:
                broken.append(f"accuracy: reported loss {loss:g} points > budget {r.accuracy_budget:g}")
        return tuple(broken)

    def objective(self, c: Candidate) -> float:
        e = c.estimate
        if self.request.objective == "cost":
            return _usd_per_million_tokens(c, self.price)
        return {"throughput": -e.output_tokens_per_s, "tpot": e.tpot_s, "ttft": e.ttft_s,
                "memory": e.memory.footprint.total_bytes}[self.request.objective]

    def rank_key(self, c: Candidate) -> tuple:
        # feasible first; then the objective; ties: fewer techniques, then the label (a stated, stable rule)
        return (len(c.violations), self.objective(c), len(c.options), c.label)


def _usd_per_million_tokens(c: Candidate, price_per_device_hour: float | None) -> float | None:
    """Device-hours the plan's devices spend per million output tokens, times their hourly price."""
    if price_per_device_hour is None:
        return None
    e = c.estimate
    if not e.output_tokens_per_s > 0:
        return float("inf")
    return price_per_device_hour * e.workload.devices / 3600.0 / e.output_tokens_per_s * 1e6


def _required(kb, options, request: PlanRequest, spec, base) -> tuple[Option, ...]:
    chosen = []
    for name in request.require:
        entry = kb.technique(name).summary.id
        matches = [o for o in options if entry in o.entries]
        if not matches:
            raise InvalidInputError(f"technique '{entry}' cannot run here (no applicable plugin setting on {spec.id})",
                                    field="require")
        chosen.append(matches[0])
    if request.devices > 1:
        parallel = [o for o in options if o.plugin_id == "tensor-parallel"
                    and o.params.to_dict().get("degree") == request.devices]
        if not parallel:
            from llmeff.techniques.registry import get_plugin

            plugin = get_plugin("tensor-parallel")
            params = plugin.Params(degree=request.devices)
            verdict = plugin.applicability(base, spec, params)
            if not verdict.ok:
                raise InvalidInputError(f"the model cannot be split over {request.devices} devices: {verdict.reason}",
                                        field="devices")
            parallel = [Option("tensor-parallel", plugin, params, ("tensor-parallelism",),
                               Accuracy("exact", 0.0, "computes the same function as the baseline"), ())]
        chosen.append(parallel[0])
    return tuple(chosen)


def _conflicts(kb, options) -> set[tuple[str, str]]:
    """Pairs of option labels the knowledge base marks as conflicting (through any of their entries)."""
    conflicting = {e: {r.id for r in kb.technique(e).conflicts_with} for o in options for e in o.entries}
    pairs = set()
    for a, b in itertools.combinations(options, 2):
        if a.plugin_id == b.plugin_id or any(y in conflicting[x] for x in a.entries for y in b.entries):
            pairs.add((a.label, b.label))
            pairs.add((b.label, a.label))
    return pairs


def _compatible(chosen, option, conflicts) -> bool:
    return all((c.label, option.label) not in conflicts for c in chosen)


def _greedy(evaluate, required, free, conflicts, progress) -> list[Candidate]:
    """Add, one at a time, the option that most improves the (feasibility, objective) rank."""
    current = evaluate(required)
    if current is None:
        raise InvalidInputError("the required techniques cannot be combined on this device", field="require")
    seen = [current]
    chosen = list(required)
    while True:
        trials = [(o, evaluate(tuple(chosen) + (o,))) for o in free
                  if o.plugin_id not in {c.plugin_id for c in chosen} and _compatible(chosen, o, conflicts)]
        trials = [(o, c) for o, c in trials if c is not None]
        seen += [c for _, c in trials]
        if progress:
            progress(evaluate.count, evaluate.count)
        if not trials:
            break
        option, best = min(trials, key=lambda pair: evaluate.rank_key(pair[1]))
        fewer_violations = len(best.violations) < len(current.violations)
        gain = evaluate.objective(current) - evaluate.objective(best)
        if not fewer_violations and gain <= MIN_GAIN * abs(evaluate.objective(current)):
            break
        chosen.append(option)
        current = _drop_superseded(evaluate, required, chosen, best, seen)
    return seen


def _drop_superseded(evaluate, required, chosen: list, current: Candidate, seen: list) -> Candidate:
    """Drop an earlier pick that a later one made unnecessary (e.g. a way to fit memory that a later, faster
    pick also provides). Every add and drop strictly lowers the rank key, so the search cannot cycle."""
    dropped = True
    while dropped:
        dropped = False
        for option in [o for o in chosen if o not in required]:
            trial = evaluate(tuple(o for o in chosen if o is not option))
            if trial is None:
                continue
            seen.append(trial)
            if evaluate.rank_key(trial) < evaluate.rank_key(current):
                chosen.remove(option)
                current, dropped = trial, True
                break
    return current


def _exhaustive(evaluate, required, free, conflicts, limit, progress) -> list[Candidate]:
    """Every compatible combination (one setting per plugin at most), up to ``limit`` candidates.

    A depth-first walk over the plugins in the pipeline's order, so that combinations sharing a
    prefix share its rewritten workload: each candidate costs one plugin rewrite and one estimate.
    """
    from llmeff.techniques.contract import STAGES

    by_plugin: dict[str, list[Option]] = {}
    for o in free:
        by_plugin.setdefault(o.plugin_id, []).append(o)
    dimensions = [[r] for r in required] + [[None] + by_plugin[p] for p in sorted(by_plugin)]
    dimensions.sort(key=lambda d: (STAGES.index(_plugin_of(d).stage), getattr(_plugin_of(d), "order", 0),
                                   _plugin_of(d).id))
    seen: list[Candidate] = []

    def walk(depth: int, chosen: tuple[Option, ...], workload) -> None:
        if evaluate.count >= limit:
            return
        if depth == len(dimensions):
            candidate = evaluate.from_workload(chosen, workload)
            if candidate is not None:
                seen.append(candidate)
            if progress and evaluate.count % 100 == 0:
                progress(evaluate.count, limit)
            return
        for option in dimensions[depth]:
            if option is None:
                walk(depth + 1, chosen, workload)
                continue
            if not _compatible(chosen, option, conflicts):
                continue
            try:
                if not option.plugin.applicability(workload, evaluate.spec, option.params).ok:
                    continue
                rewritten = option.plugin.apply(workload, evaluate.spec, option.params)
            except LlmeffError:
                continue  # this prefix cannot take the option: the subtree without it is still walked
            walk(depth + 1, chosen + (option,), rewritten)

    walk(0, (), evaluate.base)
    if progress:
        progress(evaluate.count, evaluate.count)
    if not seen:
        raise InvalidInputError("no combination of the techniques can run on this device", field="require")
    return seen


def _plugin_of(dimension: list) -> object:
    return next(o for o in dimension if o is not None).plugin


def _explain(evaluate, best: Candidate) -> tuple[str, ...]:
    """One line per chosen technique: the bottleneck it works on, what it changed, what dropping it costs."""
    decode = evaluate(()).estimate.decode
    top = decode.dominant(1)[0]
    lines = [f"plain: decode is {top.bound}-bound (dominant {top.name}, {top.arithmetic_intensity:.1f} FLOP/byte)"]
    for option in best.options:
        without = evaluate(tuple(o for o in best.options if o is not option))
        record = next(a for a in best.estimate.workload.applied if a.id == option.plugin_id)
        papers = f" [{', '.join(option.papers)}]" if option.papers else ""
        accuracy = {"exact": "exact (computes the same function)",
                    "known": f"reported accuracy loss {option.accuracy.loss_points:g} points ({option.accuracy.source})",
                    "unknown": "accuracy impact unknown (no reported result)"}[option.accuracy.kind]
        lines.append(f"{option.label}: {record.changes[0]}; {_without(without, best)}; {accuracy}{papers}")
    return tuple(lines)


def _without(without: Candidate | None, best: Candidate) -> str:
    if without is None:
        return "the rest of the plan needs it"
    w, b = without.estimate, best.estimate
    return (f"without it TPOT {w.tpot_s * 1e3:.2f} ms (vs {b.tpot_s * 1e3:.2f}), TTFT {w.ttft_s * 1e3:.1f} ms "
            f"(vs {b.ttft_s * 1e3:.1f}), memory {w.memory.footprint.total_bytes / 1e9:.1f} GB "
            f"(vs {b.memory.footprint.total_bytes / 1e9:.1f})" + ("" if without.feasible else ", and it breaks "
                                                                   + without.violations[0]))


def _distinct(ranked: tuple[Candidate, ...], limit: int) -> tuple[Candidate, ...]:
    """The first ``limit`` plans, skipping a runner-up that is a better plan plus techniques changing no figure."""
    kept: list[tuple[Candidate, tuple, frozenset]] = []
    for c in ranked:  # each candidate is compared with at most ``limit`` kept ones
        figures, options = _figures(c), frozenset(c.options)
        if not any(f == figures and o < options for _, f, o in kept):
            kept.append((c, figures, options))
            if len(kept) == limit:
                break
    return tuple(c for c, _, _ in kept)


def _figures(c: Candidate) -> tuple:
    e = c.estimate
    return (round(e.ttft_s, 9), round(e.tpot_s, 9), e.memory.footprint.total_bytes, c.violations, c.accuracy_loss,
            len(c.accuracy_unknown))


def _pareto(ranked: tuple[Candidate, ...]) -> tuple[Candidate, ...]:
    """Feasible plans no other beats on both throughput and known accuracy loss (unknown counts as risk)."""
    def risk(c: Candidate) -> tuple:
        return (c.accuracy_loss, len(c.accuracy_unknown))

    front = []
    for c in sorted((c for c in ranked if c.feasible), key=lambda c: (risk(c), -c.estimate.output_tokens_per_s)):
        if not front or c.estimate.output_tokens_per_s > front[-1].estimate.output_tokens_per_s:
            front.append(c)
    return tuple(front)
