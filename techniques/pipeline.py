"""Applying techniques to a workload in the contract's stage order."""

from __future__ import annotations

from collections.abc import Sequence

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.hardware.specs import HardwareSpec
from llmeff.techniques.contract import STAGES, Params
from llmeff.workload.operators import Workload


def apply_techniques(workload: Workload, hardware: HardwareSpec, chosen: Sequence[tuple[object, Params]]) -> Workload:
    """Each (plugin, params) applied in stage order (data, model, system), then by the plugin's ``order``
    within a stage (rewrites that others build on go first: fused attention before chunking, tensor
    before pipeline parallelism), then in the order given.

    A plugin named twice is an error; one that cannot apply raises with its reason.
    """
    ids = [plugin.id for plugin, _ in chosen]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidInputError(f"technique plugin '{repeated[0]}' given more than once", field="technique")
    for plugin, params in sorted(chosen, key=lambda pair: (STAGES.index(pair[0].stage), getattr(pair[0], "order", 0))):
        verdict = plugin.applicability(workload, hardware, params)
        if not verdict.ok:
            raise TechniqueNotApplicableError(f"{plugin.id} cannot apply on {hardware.id}: {verdict.reason}")
        workload = plugin.apply(workload, hardware, params)
    return workload


def parse_technique(text: str):
    """``'weight-only-quant:bits=4,group_size=128'`` -> (plugin, Params)."""
    from llmeff.techniques.registry import get_plugin

    name, _, settings = text.partition(":")
    plugin = get_plugin(name.strip())
    values = {}
    for item in filter(None, (part.strip() for part in settings.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError(f"'{item}' is not name=value (in '{text}')", field="technique")
        values[key.strip()] = value.strip()
    return plugin, plugin.Params.parse(values)
