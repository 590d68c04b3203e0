"""The public conformance check every technique plugin must pass (built-in or third-party).

``check_technique(plugin, workload, hardware)`` returns the list of violations (empty when the
plugin conforms): the contract's shape, purity (the input workload is unchanged), determinism
(the same input gives the same output), no negative cost terms, a record of what it applied, and
a refusal with a reason (and an error from ``apply``) where it cannot apply.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from llmeff.errors import TechniqueNotApplicableError
from llmeff.hardware.specs import HardwareSpec
from llmeff.techniques.contract import STAGES, Applicability, Params
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable, Workload


def check_technique(plugin: object, workload: Workload, hardware: HardwareSpec, *, max_params: int = 8) -> list[str]:
    problems = _shape_problems(plugin)
    if problems:
        return problems
    for params in itertools.islice(plugin.param_space(workload, hardware), max_params):
        where = f"{plugin.id} {params}"
        if not isinstance(params, plugin.Params):
            problems.append(f"{where}: param_space yielded a {type(params).__name__}, not {plugin.Params.__name__}")
            continue
        verdict = plugin.applicability(workload, hardware, params)
        if not isinstance(verdict, Applicability):
            problems.append(f"{where}: applicability returned {verdict!r}, not an Applicability")
            continue
        if not verdict.ok:
            problems += _refusal_problems(plugin, workload, hardware, params, verdict, where)
            continue
        snapshot = _fingerprint(workload)
        first = plugin.apply(workload, hardware, params)
        second = plugin.apply(workload, hardware, params)
        if _fingerprint(workload) != snapshot:
            problems.append(f"{where}: apply modified its input workload")
        if _fingerprint(first) != _fingerprint(second):
            problems.append(f"{where}: apply is not deterministic")
        problems += [f"{where}: {p}" for p in _value_problems(first)]
        if len(first.applied) != len(workload.applied) + 1 or first.applied[-1].id != plugin.id:
            problems.append(f"{where}: apply did not record itself in workload.applied")
    return problems


def _shape_problems(plugin: object) -> list[str]:
    problems = []
    for name in ("id", "stage", "summary", "Params", "param_space", "applicability", "apply"):
        if not hasattr(plugin, name):
            problems.append(f"plugin {plugin!r} has no '{name}'")
    if problems:
        return problems
    if plugin.stage not in STAGES:
        problems.append(f"{plugin.id}: stage '{plugin.stage}' is not one of {', '.join(STAGES)}")
    if not (isinstance(plugin.Params, type) and issubclass(plugin.Params, Params)):
        problems.append(f"{plugin.id}: Params must subclass llmeff.techniques.contract.Params")
    elif not plugin.Params.__dataclass_params__.frozen:
        problems.append(f"{plugin.id}: Params must be a frozen dataclass")
    return problems


def _refusal_problems(plugin, workload, hardware, params, verdict, where) -> list[str]:
    problems = [] if verdict.reason.strip() else [f"{where}: refused without a reason"]
    try:
        plugin.apply(workload, hardware, params)
        problems.append(f"{where}: refused ({verdict.reason}) but apply did not raise")
    except TechniqueNotApplicableError:
        pass
    return problems


def _value_problems(workload: Workload) -> list[str]:
    problems = []
    for phase in (workload.prefill, workload.decode):
        table = phase.table
        for column in NUMERIC_COLUMNS:
            values = getattr(table, column)
            if len(values) != len(table.names):
                problems.append(f"{phase.name}.{column} has {len(values)} values for {len(table.names)} rows")
            elif np.isnan(values).any() or (values < 0).any():
                problems.append(f"{phase.name}.{column} has a negative or NaN value")
    memory = workload.memory
    if min(memory.weight_bytes, memory.kv_cache_bytes, memory.activation_bytes) < 0:
        problems.append("the memory footprint has a negative term")
    if not workload.decode_tokens_per_step >= 1:
        problems.append(f"decode_tokens_per_step {workload.decode_tokens_per_step} is below 1")
    return problems


def _fingerprint(workload: Workload) -> tuple:
    """Everything a plugin could change, as comparable plain values."""

    def table(t: OperatorTable) -> tuple:
        return (t.names, t.kinds, t.dtypes, t.resources) + tuple(getattr(t, c).tobytes() for c in NUMERIC_COLUMNS)

    plain = {f.name: getattr(workload, f.name) for f in dataclasses.fields(workload)
             if f.name not in ("prefill", "decode", "architecture", "memory", "applied")}
    return (
        tuple(sorted((k, repr(v)) for k, v in plain.items())),
        table(workload.prefill.table), workload.prefill.tokens,
        table(workload.decode.table), workload.decode.tokens,
        dataclasses.astuple(workload.memory), repr(workload.applied), repr(workload.architecture),
    )
