"""The technique plugin contract: what a cost-model plugin is, and the helpers every plugin shares.

A plugin is a stateless object with an ``id`` (its entry-point name in the group
``llmeff.techniques`` and the ``plugin`` column of its knowledge-base entries), a ``stage`` (data,
model or system: the order in which plugins rewrite a workload), a frozen ``Params`` dataclass,
and three methods:

- ``param_space(workload, hardware)``: the settings worth trying (the planner enumerates them);
- ``applicability(workload, hardware, params)``: ``OK``, or ``refuse("why")``;
- ``apply(workload, hardware, params)``: a new Workload (never a mutated input), with an
  ``AppliedTechnique`` record of what changed appended to ``workload.applied``.

Every effect is a rewrite of the workload's operator tables, memory footprint or step structure,
so the roofline stays one pure function. Accuracy effects do not live here: they come from the
knowledge base's reported results.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol, runtime_checkable

from llmeff.errors import InvalidInputError, TechniqueNotApplicableError
from llmeff.hardware.specs import HardwareSpec
from llmeff.workload.operators import Workload

STAGES = ("data", "model", "system")


@dataclass(frozen=True)
class Applicability:
    ok: bool
    reason: str = ""


OK = Applicability(True)


def refuse(reason: str) -> Applicability:
    return Applicability(False, reason)


@dataclass(frozen=True)
class Params:
    """Base of a plugin's parameters: typed fields with defaults, checked by ``validate``.

    ``validate`` raises ``InvalidInputError(message, field=name)`` for a value out of range; it runs
    on construction, so an invalid Params object cannot exist.
    """

    def __post_init__(self) -> None:
        self.validate()

    aliases: ClassVar[dict[str, str]] = {}  # short names accepted by parse, e.g. group -> group_size

    def validate(self) -> None:
        """Raise InvalidInputError naming the parameter when a value is out of its range."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def parse(cls, values: Mapping[str, str]) -> "Params":
        """Params from text such as the CLI's ``bits=4,group=128``: names and types are checked."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        converted: dict[str, Any] = {}
        for name, text in values.items():
            name = cls.aliases.get(name, name)
            if name not in known:
                choices = ", ".join(known) or "none"
                raise InvalidInputError(f"unknown parameter '{name}' (parameters: {choices})", field=name)
            converted[name] = _convert(text, hints[name], name)
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in converted
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise InvalidInputError(f"is required (e.g. {missing[0]}=...)", field=missing[0])
        return cls(**converted)


def _convert(text: str, kind: Any, name: str) -> Any:
    """Text to the annotated type (int, float, bool, str, or an optional of one of them)."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if text.strip().lower() in ("none", ""):
            return None
        kind = options[0]
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise InvalidInputError(f"'{text}' is not a valid {kind.__name__}", field=name) from None
    return text


@dataclass(frozen=True)
class AppliedTechnique:
    """What a plugin did to a workload: its id, its parameters, and one line per change."""

    id: str
    params: Mapping[str, Any]
    changes: tuple[str, ...]


@runtime_checkable
class Technique(Protocol):
    id: str
    stage: str
    summary: str
    Params: type[Params]

    def param_space(self, workload: Workload, hardware: HardwareSpec) -> Iterable[Params]: ...

    def applicability(self, workload: Workload, hardware: HardwareSpec, params: Params) -> Applicability: ...

    def apply(self, workload: Workload, hardware: HardwareSpec, params: Params) -> Workload: ...


class BaseTechnique:
    """Shared behaviour: ``apply`` checks applicability, calls ``rewrite``, and records the result.

    Subclasses set ``id``, ``stage``, ``summary``, ``Params`` and implement ``rewrite`` (returning
    the new workload and the lines describing what changed), ``applicability`` and ``param_space``.
    """

    id: ClassVar[str]
    stage: ClassVar[str]
    summary: ClassVar[str]
    Params: ClassVar[type[Params]]
    aliases: ClassVar[tuple[str, ...]] = ()
    order: ClassVar[int] = 0  # within a stage, lower applies first (see techniques.pipeline)

    def param_space(self, workload: Workload, hardware: HardwareSpec) -> Iterable[Params]:
        return (self.Params(),)

    def applicability(self, workload: Workload, hardware: HardwareSpec, params: Params) -> Applicability:
        return OK

    def rewrite(self, workload: Workload, hardware: HardwareSpec, params: Params) -> tuple[Workload, list[str]]:
        raise NotImplementedError

    def apply(self, workload: Workload, hardware: HardwareSpec, params: Params) -> Workload:
        if not isinstance(params, self.Params):
            raise InvalidInputError(f"{self.id} takes {self.Params.__name__}, got {type(params).__name__}")
        verdict = self.applicability(workload, hardware, params)
        if not verdict.ok:
            raise TechniqueNotApplicableError(f"{self.id} cannot apply: {verdict.reason}")
        new, changes = self.rewrite(workload, hardware, params)
        record = AppliedTechnique(self.id, params.to_dict(), tuple(changes))
        return replace(new, applied=workload.applied + (record,))

    def __repr__(self) -> str:
        return f"<technique plugin {self.id}>"
