"""SQLModel tables of the knowledge base.

The shipped part (everything here) is rebuilt from ``data/`` when its content hash changes;
tables that hold what a user imported (added by later modules) are never touched by a rebuild.
List-valued columns that are only ever displayed (sources, notes) are JSON text; everything a
query filters or joins on has its own column or table.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, String
from sqlalchemy.ext.compiler import compiles
from sqlmodel import Field, SQLModel

# Counts of bytes and parameters pass 2**31 (an 80 GB device, a 70B model): 64-bit columns, which
# PostgreSQL needs (its INTEGER is 32-bit) and SQLite does not mind.
_BIG = {"sa_type": BigInteger}


@compiles(String, "postgresql")
def _byte_order(type_, compiler, **kw) -> str:
    """Text columns compare and sort by code point on PostgreSQL, as SQLite's default (BINARY) does.

    Without it a server's locale (en_US, say) would order ``ORDER BY id`` listings differently
    from the same listing on SQLite.
    """
    return compiler.visit_VARCHAR(type_, **kw) + ' COLLATE "C"'


class Meta(SQLModel, table=True):
    __tablename__ = "llmeff_meta"
    key: str = Field(primary_key=True)
    value: str


class Category(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    parent_id: str | None = Field(default=None, foreign_key="category.id", index=True)
    tree: str = Field(index=True)  # "survey" (2404.14294) or "unveiled" (2402.16363)
    survey_section: str | None = None
    extension: bool = False
    source: str | None = None
    note: str | None = None
    position: int  # order in the data file, so trees print in the survey's order


class Seed(SQLModel, table=True):
    id: str = Field(primary_key=True)
    title: str
    first_author: str
    year: int
    arxiv: str
    note: str | None = None


class Paper(SQLModel, table=True):
    id: str = Field(primary_key=True)  # the arXiv id, or a slug of the title when there is none
    title: str
    first_author: str
    year: int
    arxiv: str | None = Field(default=None, index=True)
    venue: str | None = None
    url_hint: str | None = None


class Technique(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    category_id: str = Field(foreign_key="category.id", index=True)
    unveiled_category_id: str | None = Field(default=None, foreign_key="category.id")
    level: str = Field(index=True)  # data-level / model-level / system-level
    seeds: str  # JSON list of seed ids
    extension: bool = False
    mechanism: str
    modelable: str = Field(index=True)  # full / partial / no
    modelable_reason: str
    plugin: str | None = Field(default=None, index=True)
    plugin_status: str | None = None
    plugin_params: str = "{}"  # JSON: the plugin settings this entry stands for
    captured_by: str | None = None
    hardware_note: str | None = None
    conflict_notes: str | None = None
    notes: str | None = None
    cost_effects: str  # JSON object, for plugin authors
    references: str  # JSON list of non-paper sources (repositories, documentation)
    source_file: str


class TechniqueAlias(SQLModel, table=True):
    alias: str = Field(primary_key=True)  # stored lower-case; aliases are matched case-insensitively
    technique_id: str = Field(foreign_key="technique.id", index=True)
    display: str


class TechniquePaper(SQLModel, table=True):
    technique_id: str = Field(foreign_key="technique.id", primary_key=True)
    paper_id: str = Field(foreign_key="paper.id", primary_key=True)
    position: int
    note: str | None = None


class ReportedResult(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    technique_id: str = Field(foreign_key="technique.id", index=True)
    position: int
    claim: str
    metric: str | None = Field(default=None, index=True)
    value: float | None = None
    baseline: str | None = None
    model: str | None = None
    hardware: str | None = None
    source: str
    source_kind: str


class Relation(SQLModel, table=True):
    """An undirected relation, stored once with technique_a < technique_b."""

    technique_a: str = Field(foreign_key="technique.id", primary_key=True)
    technique_b: str = Field(foreign_key="technique.id", primary_key=True)
    kind: str = Field(primary_key=True)  # "combines" or "conflicts"
    note: str | None = None


class HardwareRequirement(SQLModel, table=True):
    technique_id: str = Field(foreign_key="technique.id", primary_key=True)
    capability: str = Field(primary_key=True, index=True)


class Hardware(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    vendor: str = Field(index=True)
    kind: str = Field(index=True)
    memory_capacity_bytes: int | None = Field(default=None, **_BIG)
    memory_type: str | None = None
    memory_bandwidth_bytes_per_s: float
    npu_peak_ops_per_s: float | None = None
    npu_peak_dtype: str | None = None
    vector_fp32_flops: float | None = None
    interconnect_kind: str | None = None
    interconnect_bandwidth_bytes_per_s: float | None = None
    interconnect_note: str | None = None
    host_link_kind: str | None = None
    host_link_bandwidth_bytes_per_s: float | None = None
    host_link_note: str | None = None
    on_chip_sram_bytes: int | None = Field(default=None, **_BIG)
    tdp_watts: float | None = None
    release_year: int | None = None
    price_usd_per_hour: float | None = None
    features: str  # JSON list of capability tags stated by the sources
    executes: str = "{}"  # JSON: precision -> [the published rate it runs at, source]
    processors: str = "{}"  # JSON: further processors of a SoC -> {peaks, sources, unverified, note}
    # the device's own [efficiency], else its class default (data/efficiency.toml), else ideal
    efficiency_compute_fraction: float = 1.0
    efficiency_bandwidth_fraction: float = 1.0
    efficiency_kernel_overhead_s: float = 0.0
    efficiency_source: str | None = None
    sources: str  # JSON list
    unverified: str  # JSON list
    notes: str | None = None
    source_file: str


class HardwarePeak(SQLModel, table=True):
    hardware_id: str = Field(foreign_key="hardware.id", primary_key=True)
    dtype: str = Field(primary_key=True)
    flops_per_s: float


class HardwareAlias(SQLModel, table=True):
    alias: str = Field(primary_key=True)  # lower-case
    hardware_id: str = Field(foreign_key="hardware.id", index=True)
    display: str


class Model(SQLModel, table=True):
    id: str = Field(primary_key=True)
    name: str
    family: str = Field(index=True)
    hf_repo_id: str | None = None
    model_type: str = Field(index=True)
    config: str  # JSON: the Hugging Face config.json fields
    params_total: int = Field(**_BIG)  # computed from the config by llmeff.architectures
    params_active: int = Field(**_BIG)
    published_params_b: float | None = None
    published_active_params_b: float | None = None
    published_params_source: str | None = None
    sources: str  # JSON list
    unverified: str  # JSON list
    derived: str  # JSON list
    notes: str | None = None
    source_file: str


class ModelAlias(SQLModel, table=True):
    alias: str = Field(primary_key=True)  # lower-case
    model_id: str = Field(foreign_key="model.id", index=True)
    display: str


SHIPPED_TABLES = (
    Meta,
    Category,
    Seed,
    Paper,
    Technique,
    TechniqueAlias,
    TechniquePaper,
    ReportedResult,
    Relation,
    HardwareRequirement,
    Hardware,
    HardwarePeak,
    HardwareAlias,
    Model,
    ModelAlias,
)
