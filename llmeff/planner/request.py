"""What a user asks the planner: model, hardware, workload, constraints and an objective."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llmeff.errors import InvalidInputError
from llmeff.workload.request import WorkloadRequest

OBJECTIVES = ("throughput", "tpot", "ttft", "memory", "cost")
SEARCHES = ("greedy", "exhaustive")


@dataclass(frozen=True)
class PlanRequest:
    hardware: str
    model: str | None = None
    config: str | os.PathLike[str] | None = None
    devices: int = 1
    workload: WorkloadRequest = field(default_factory=WorkloadRequest)
    max_ttft_ms: float | None = None
    max_tpot_ms: float | None = None
    accuracy_budget: float | None = None  # accepted loss in accuracy points, from reported results
    objective: str = "throughput"
    price_usd_per_device_hour: float | None = None  # overrides the hardware record's price (for "cost")
    top: int = 3
    require: tuple[str, ...] = ()  # knowledge-base technique ids (or aliases) every plan must contain
    exclude: tuple[str, ...] = ()
    search: str = "greedy"
    max_candidates: int = 20000  # exhaustive search stops enumerating here
    engine: str | None = None  # the engine the calibration's factors are taken for (default: stated)
    calibrated: bool = True  # use the stored calibration (llmeff bench calibrate), if any
    db: str | os.PathLike[str] | None = None

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InvalidInputError(f"unknown objective '{self.objective}' (known: {', '.join(OBJECTIVES)})",
                                    field="objective")
        if self.search not in SEARCHES:
            raise InvalidInputError(f"unknown search '{self.search}' (known: {', '.join(SEARCHES)})", field="search")
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) or self.devices < 1:
            raise InvalidInputError(f"must be a positive whole number, got {self.devices!r}", field="devices")
        for name in ("max_ttft_ms", "max_tpot_ms"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InvalidInputError(f"must be positive, got {value}", field=name)
        if self.price_usd_per_device_hour is not None and not self.price_usd_per_device_hour > 0:
            raise InvalidInputError(f"must be positive, got {self.price_usd_per_device_hour}",
                                    field="price_per_device_hour")
        if self.accuracy_budget is not None and not self.accuracy_budget >= 0:
            raise InvalidInputError(f"must not be negative, got {self.accuracy_budget}", field="accuracy_budget")
        if not 1 <= self.max_candidates <= 10_000_000:
            raise InvalidInputError(f"must be between 1 and 10,000,000, got {self.max_candidates}",
                                    field="max_candidates")
        if not 1 <= self.top <= 100:
            raise InvalidInputError(f"must be between 1 and 100, got {self.top}", field="top")
        both = sorted(set(self.require) & set(self.exclude))
        if both:
            raise InvalidInputError(f"'{both[0]}' is both required and excluded", field="require")
