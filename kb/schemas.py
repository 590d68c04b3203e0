"""Pydantic schemas of the shipped data files (``data/``): what a valid file looks like.

Only the build path imports this module (pydantic is slow to import); the read path never does.
Unknown keys are errors, so a typo in a contributor's file is caught by ``llmeff db check``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llmeff.kb.vocabulary import CAPABILITIES

ID_PATTERN = r"^[a-z0-9][a-z0-9.\-_]*$"
ARXIV_PATTERN = re.compile(r"^\d{4}\.\d{4,5}$")

METRICS = (
    "speedup_x",
    "memory_reduction_x",
    "accuracy_delta",
    "perplexity",
    "tokens_per_s",
    "compression_ratio",
    "acceptance_length",
)
SOURCE_KINDS = ("abstract", "paper-table", "repo-readme", "third-party")
DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4", "fp4")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paper(Strict):
    title: str = Field(min_length=3)
    first_author: str = Field(min_length=2)
    year: int = Field(ge=1990, le=2100)
    arxiv: str | None = None
    venue: str | None = None
    url_hint: str | None = None
    note: str | None = None

    @field_validator("arxiv")
    @classmethod
    def _arxiv_form(cls, value: str | None) -> str | None:
        if value is not None and not ARXIV_PATTERN.match(value):
            raise ValueError(f"'{value}' is not an arXiv id of the form 2404.14294")
        return value

    @model_validator(mode="after")
    def _locatable(self) -> "Paper":
        if not (self.arxiv or self.venue or self.url_hint):
            raise ValueError("a paper needs an arxiv id, a venue or a url_hint so that it can be found")
        return self


class ReportedResult(Strict):
    claim: str = Field(min_length=3)
    metric: Literal[METRICS] | None = None  # type: ignore[valid-type]
    value: float | None = None
    baseline: str | None = None
    model: str | None = None
    hardware: str | None = None
    source: str = Field(min_length=3)
    source_kind: Literal[SOURCE_KINDS]  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _metric_and_value_together(self) -> "ReportedResult":
        if (self.metric is None) != (self.value is None):
            raise ValueError("metric and value go together: give both, or neither for a qualitative claim")
        return self


class HardwareNeeds(Strict):
    requires: list[Literal[CAPABILITIES]] = []  # type: ignore[valid-type]
    note: str | None = None


class CostModelLink(Strict):
    modelable: Literal["full", "partial", "no"]
    reason: str = Field(min_length=3)
    plugin: str | None = Field(default=None, pattern=ID_PATTERN)
    plugin_status: Literal["planned"] | None = None
    captured_by: Literal["architecture", "hardware"] | None = None
    params: dict[str, str | int | float | bool] = {}  # the plugin's settings this entry stands for (AWQ: bits=4)

    @model_validator(mode="after")
    def _link_matches_level(self) -> "CostModelLink":
        linked = self.plugin is not None or self.captured_by is not None
        if self.modelable == "no" and linked:
            raise ValueError("an entry that is not modelable links to no plugin")
        if self.modelable != "no" and not linked:
            raise ValueError("a modelable entry names its plugin, or says it is captured_by the architecture or hardware")
        if self.plugin is not None and self.captured_by is not None:
            raise ValueError("give either plugin or captured_by, not both")
        if self.plugin_status is not None and self.plugin is None:
            raise ValueError("plugin_status needs a plugin")
        if self.params and self.plugin is None:
            raise ValueError("params are settings of a plugin: give the plugin too")
        return self


class TechniqueFile(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=2)
    aliases: list[str] = []
    category: str
    unveiled_category: str | None = None
    seeds: list[str] = []
    extension: bool = False
    mechanism: str = Field(min_length=10)
    hardware: HardwareNeeds = HardwareNeeds()
    compatible_with: list[str] = []
    conflicts_with: list[str] = []
    conflict_notes: str | None = None
    notes: str | None = None
    cost_model: CostModelLink
    cost_effects: dict[str, str | int | float | dict[str, str | int | float]] = {}
    papers: list[Paper] = []
    references: list[str] = []  # repositories or documentation, for engines that have no paper
    results: list[ReportedResult] = []

    @model_validator(mode="after")
    def _has_a_source(self) -> "TechniqueFile":
        if not self.papers and not self.references:
            raise ValueError("a technique needs at least one paper or one reference (its source)")
        return self


class Category(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    parent: str | None = None
    tree: Literal["survey", "unveiled"]
    survey_section: str | None = None
    extension: bool = False
    source: str | None = None
    note: str | None = None


class Seed(Strict):
    id: str
    title: str
    first_author: str
    year: int
    arxiv: str
    tool: str | None = None
    note: str | None = None


class TaxonomyFile(Strict):
    seeds: list[Seed]
    categories: list[Category]


class PlannedPlugin(Strict):
    id: str = Field(pattern=ID_PATTERN)
    stage: Literal["data", "model", "system"]
    summary: str = Field(min_length=10)


class PluginCatalogFile(Strict):
    plugins: list[PlannedPlugin]


class Link(Strict):
    kind: str
    bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)
    note: str | None = None


class ExecutesRule(Strict):
    """A precision with no published peak of its own runs at another precision's published rate."""

    rate: Literal[DTYPES]  # type: ignore[valid-type]
    source: str = Field(min_length=10)


class ProcessorFile(Strict):
    """Another processor of a system-on-chip (e.g. its CPU cluster), with its own sourced peaks."""

    peaks: dict[Literal[DTYPES], float] = Field(min_length=1)  # type: ignore[valid-type]
    sources: list[str] = Field(min_length=1)
    unverified: list[str] = []
    note: str | None = None


class EfficiencyFile(Strict):
    """Measured efficiency of a device (or a device class, in data/efficiency.toml), with its source."""

    compute_fraction: float = Field(gt=0, le=1)
    bandwidth_fraction: float = Field(gt=0, le=1)
    kernel_overhead_s: float = Field(ge=0)
    source: str = Field(min_length=10)


class EfficiencyClass(EfficiencyFile):
    id: str = Field(pattern=ID_PATTERN)
    devices: list[str] = Field(min_length=1)  # hardware ids that take this default


class EfficiencyDefaultsFile(Strict):
    classes: list[EfficiencyClass]


class HardwareFile(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    vendor: str
    kind: Literal["gpu", "soc-gpu", "npu", "tpu", "accelerator", "cpu"]
    aliases: list[str] = []
    memory_capacity_bytes: int | None = Field(default=None, gt=0)
    memory_type: str | None = None
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    peak_flops_dense: dict[Literal[DTYPES], float] = {}  # type: ignore[valid-type]
    npu_peak_ops_per_s: float | None = Field(default=None, gt=0)
    npu_peak_dtype: Literal[DTYPES] | None = None  # type: ignore[valid-type]
    vector_fp32_flops: float | None = Field(default=None, gt=0)
    interconnect: Link | None = None
    host_link: Link | None = None
    on_chip_sram_bytes: int | None = Field(default=None, gt=0)
    tdp_watts: float | None = Field(default=None, gt=0)
    release_year: int | None = None
    price_usd_per_hour: float | None = Field(default=None, gt=0)
    features: list[Literal[CAPABILITIES]] = []  # type: ignore[valid-type]
    efficiency: EfficiencyFile | None = None  # overrides the class default of data/efficiency.toml
    executes: dict[Literal[DTYPES], ExecutesRule] = {}  # type: ignore[valid-type]
    processors: dict[Literal["cpu", "gpu", "npu", "dsp"], ProcessorFile] = {}  # type: ignore[valid-type]
    sources: list[str] = Field(min_length=1)
    unverified: list[str] = []
    notes: str | None = None

    @field_validator("peak_flops_dense")
    @classmethod
    def _positive_peaks(cls, peaks: dict[str, float]) -> dict[str, float]:
        for dtype, value in peaks.items():
            if not value > 0:
                raise ValueError(f"peak for {dtype} must be positive (omit a peak that is not known)")
        return peaks

    @model_validator(mode="after")
    def _executes_names_a_published_rate(self) -> "HardwareFile":
        for dtype, rule in self.executes.items():
            if dtype in self.peak_flops_dense:
                raise ValueError(f"executes.{dtype}: {dtype} has a published peak of its own")
            if rule.rate not in self.peak_flops_dense:
                raise ValueError(f"executes.{dtype}: there is no published {rule.rate} peak to run at")
        return self


class ModelFile(Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str
    family: str
    hf_repo_id: str | None = None
    aliases: list[str] = []
    published_params_b: float | None = Field(default=None, gt=0)
    published_params_source: str | None = None
    published_active_params_b: float | None = Field(default=None, gt=0)
    sources: list[str] = Field(min_length=1)
    unverified: list[str] = []
    derived: list[str] = []
    notes: str | None = None
    config_null_keys: list[str] = []
    config: dict[str, object]

    @model_validator(mode="before")
    @classmethod
    def _restore_config_nulls(cls, data: object) -> object:
        # TOML has no null: keys listed in config_null_keys are null in the real config.json
        from llmeff.architectures import config_from_model_entry

        if isinstance(data, dict) and isinstance(data.get("config_null_keys"), list) and isinstance(data.get("config"), dict):
            data = {**data, "config": config_from_model_entry(data)}
        return data

    @model_validator(mode="after")
    def _published_size_is_sourced(self) -> "ModelFile":
        published = self.published_params_b is not None or self.published_active_params_b is not None
        if published and not self.published_params_source:
            raise ValueError("published_params_b needs published_params_source (where it was read)")
        return self
