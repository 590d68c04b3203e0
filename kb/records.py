"""Typed, immutable records that knowledge-base queries return (the read side of the tables)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


class Record:
    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]


@dataclass(frozen=True)
class CategoryRef(Record):
    id: str
    name: str
    tree: str
    parent_id: str | None = None
    survey_section: str | None = None
    extension: bool = False
    source: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class TechniqueSummary(Record):
    id: str
    name: str
    level: str
    category_id: str
    category_name: str
    unveiled_category_id: str | None
    modelable: str
    plugin: str | None
    plugin_status: str | None
    captured_by: str | None
    requires: tuple[str, ...]
    aliases: tuple[str, ...]
    paper_count: int
    result_count: int


@dataclass(frozen=True)
class PaperRef(Record):
    id: str
    title: str
    first_author: str
    year: int
    arxiv: str | None = None
    venue: str | None = None
    url_hint: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class ReportedResult(Record):
    claim: str
    metric: str | None
    value: float | None
    baseline: str | None
    model: str | None
    hardware: str | None
    source: str
    source_kind: str


@dataclass(frozen=True)
class RelatedTechnique(Record):
    id: str
    name: str
    note: str | None = None


@dataclass(frozen=True)
class TechniqueDetail(Record):
    summary: TechniqueSummary
    path: tuple[CategoryRef, ...]
    unveiled_path: tuple[CategoryRef, ...]
    seeds: tuple[str, ...]
    extension: bool
    mechanism: str
    modelable_reason: str
    plugin_installed: bool
    plugin_params: dict
    hardware_note: str | None
    notes: str | None
    cost_effects: dict = field(default_factory=dict)
    papers: tuple[PaperRef, ...] = ()
    references: tuple[str, ...] = ()
    results: tuple[ReportedResult, ...] = ()
    combines_with: tuple[RelatedTechnique, ...] = ()
    conflicts_with: tuple[RelatedTechnique, ...] = ()
    source_file: str = ""


@dataclass(frozen=True)
class SearchHit(Record):
    technique: TechniqueSummary
    matched_in: tuple[str, ...]  # name, alias, mechanism, paper title
    score: int


@dataclass(frozen=True)
class TreeNode(Record):
    category: CategoryRef
    children: tuple["TreeNode", ...]
    techniques: tuple[TechniqueSummary, ...]

    def technique_count(self) -> int:
        return len(self.techniques) + sum(child.technique_count() for child in self.children)


@dataclass(frozen=True)
class ModelRecord(Record):
    id: str
    name: str
    family: str
    hf_repo_id: str | None
    model_type: str
    params_total: int
    params_active: int
    published_params_b: float | None
    published_active_params_b: float | None
    published_params_source: str | None
    aliases: tuple[str, ...]
    config: dict
    sources: tuple[str, ...]
    unverified: tuple[str, ...]
    derived: tuple[str, ...]
    notes: str | None
    source_file: str | None

    def architecture(self):
        """The architecture record the cost model reads, built from the stored config."""
        from llmeff.architectures import Architecture

        return Architecture.from_hf_config(self.config, where=self.source_file or self.id)


@dataclass(frozen=True)
class TableCount(Record):
    table: str
    rows: int


@dataclass(frozen=True)
class DatabaseStatus(Record):
    backend: str  # sqlite or postgresql
    path: str  # the file, or the server's URL with its password masked
    schema_version: int | None
    content_hash: str | None
    data_content_hash: str
    up_to_date: bool
    llmeff_version: str | None
    size_bytes: int
    counts: tuple[TableCount, ...]
