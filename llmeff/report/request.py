"""What a comparison report is asked for, from the command line or a saved ``report.toml``."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from llmeff.errors import InvalidInputError
from llmeff.workload.request import WorkloadRequest

BASELINE = "baseline"


@dataclass(frozen=True)
class Combination:
    """Techniques applied together (in stage order); none is the baseline."""

    techniques: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return " + ".join(self.techniques) or BASELINE

    @classmethod
    def parse(cls, text: str) -> "Combination":
        """``'weight-only-quant:bits=4 + fused-attention'``: '+' joins techniques, ':' opens a plugin's settings."""
        parts = tuple(p.strip() for p in text.split("+"))
        if not text.strip() or any(not p for p in parts):
            raise InvalidInputError(f"'{text}' is not a combination (techniques joined by '+')", field="technique")
        return cls(parts)


@dataclass(frozen=True)
class ReportRequest:
    """Models x hardware x technique combinations (the baseline always comes first), one workload.

    ``models`` are registry ids or aliases; ``configs`` are Hugging Face config.json files of models
    the registry does not hold.
    """

    models: tuple[str, ...]
    hardware: tuple[str, ...]
    combinations: tuple[Combination, ...] = ()
    workload: WorkloadRequest = field(default_factory=WorkloadRequest)
    engine: str | None = None
    calibrated: bool = True
    title: str | None = None
    configs: tuple[str, ...] = ()

    def validated(self) -> "ReportRequest":
        if not self.models and not self.configs:
            raise InvalidInputError("give at least one model (or a config.json)", field="model")
        for config in self.configs:
            if not Path(config).is_file():
                raise InvalidInputError(f"no such file: {config}", field="config")
        if not self.hardware:
            raise InvalidInputError("give at least one hardware id", field="hardware")
        for name, values in (("model", self.models + self.configs), ("hardware", self.hardware),
                             ("technique", [c.label for c in self.combinations])):
            repeated = sorted({v for v in values if list(values).count(v) > 1})
            if repeated:
                raise InvalidInputError(f"'{repeated[0]}' is given twice", field=name)
        self.workload.validated()
        return self

    @property
    def all_combinations(self) -> tuple[Combination, ...]:
        return (Combination(),) + tuple(c for c in self.combinations if c.techniques)

    def to_dict(self) -> dict:
        return {"models": list(self.models), "hardware": list(self.hardware),
                "combinations": [list(c.techniques) for c in self.combinations],
                "workload": asdict(self.workload), "engine": self.engine, "calibrated": self.calibrated,
                "title": self.title, "configs": list(self.configs)}

    @classmethod
    def from_dict(cls, data: dict, *, where: str = "request") -> "ReportRequest":
        """The inverse of ``to_dict``; also reads a ``report.toml`` (see ``load_spec``)."""
        known = {"models", "hardware", "combinations", "workload", "engine", "calibrated", "title", "configs"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInputError(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})", where=where)
        models = _strings(data.get("models", ()), "models", where)
        configs = _strings(data.get("configs", ()), "configs", where)
        hardware = _strings(data.get("hardware", ()), "hardware", where)
        combinations = []
        for i, combo in enumerate(data.get("combinations", ())):
            if isinstance(combo, str):
                combinations.append(Combination.parse(combo))
            else:
                combinations.append(Combination(_strings(combo, f"combinations[{i}]", where)))
        workload = data.get("workload", {})
        if not isinstance(workload, dict):
            raise InvalidInputError("must be a table (batch, prompt_tokens, ...)", where=where, field="workload")
        try:
            workload_request = WorkloadRequest(**workload)
        except TypeError:
            allowed = ", ".join(WorkloadRequest.__dataclass_fields__)
            raise InvalidInputError(f"unknown key in workload (known: {allowed})", where=where,
                                    field="workload") from None
        calibrated = data.get("calibrated", True)
        if not isinstance(calibrated, bool):
            raise InvalidInputError(f"must be true or false, got {calibrated!r}", where=where, field="calibrated")
        return cls(models, hardware, tuple(combinations), workload_request, data.get("engine"), calibrated,
                   data.get("title"), configs).validated()


def _strings(values, name: str, where: str) -> tuple[str, ...]:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in values):
        raise InvalidInputError("must be a list of names", where=where, field=name)
    return tuple(v.strip() for v in values)


def load_spec(path: str | os.PathLike[str]) -> ReportRequest:
    """A saved request::

        models = ["llama-2-7b"]
        hardware = ["a100-sxm4-80gb", "h100-sxm-80gb"]
        combinations = ["weight-only-quant:bits=4", "fused-attention + paged-kv"]
        [workload]
        batch = 8
        prompt_tokens = 1024
        output_tokens = 256
    """
    source = Path(path)
    if not source.is_file():
        raise InvalidInputError(f"no such file: {source}", field="spec")
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"not valid TOML ({exc})", where=str(source)) from None
    return ReportRequest.from_dict(data, where=str(source))
