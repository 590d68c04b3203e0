"""Turn validated data files into knowledge-base rows (the build path; the caller commits)."""

from __future__ import annotations

import json
import re

from sqlmodel import Session, delete, select

from llmeff.kb import schemas, tables
from llmeff.kb.load import ShippedData


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def paper_key(paper: schemas.Paper) -> str:
    """A paper's stable id: its arXiv id, or a slug of its title when it has none."""
    if paper.arxiv:
        return paper.arxiv
    return re.sub(r"[^a-z0-9]+", "-", paper.title.lower()).strip("-")[:80]


def clear_shipped(session: Session) -> None:
    """Delete every shipped row, children first (user-imported tables are not touched)."""
    for table in reversed(tables.SHIPPED_TABLES):
        session.exec(delete(table))  # type: ignore[call-overload]


def add_shipped(session: Session, shipped: ShippedData) -> None:
    _add_taxonomy(session, shipped)
    _add_techniques(session, shipped)
    _add_hardware(session, shipped)
    _add_models(session, shipped)


def _add_taxonomy(session: Session, shipped: ShippedData) -> None:
    for seed in shipped.taxonomy.seeds:  # type: ignore[union-attr]  (load_valid_data checked it)
        session.add(tables.Seed(**seed.model_dump(exclude={"tool"})))
    for position, category in enumerate(shipped.taxonomy.categories):  # type: ignore[union-attr]
        session.add(
            tables.Category(
                id=category.id,
                name=category.name,
                parent_id=category.parent,
                tree=category.tree,
                survey_section=category.survey_section,
                extension=category.extension,
                source=category.source,
                note=category.note,
                position=position,
            )
        )


def _level_of(category_id: str, shipped: ShippedData) -> str:
    parents = {c.id: c.parent for c in shipped.taxonomy.categories}  # type: ignore[union-attr]
    while parents.get(category_id):
        category_id = parents[category_id]  # type: ignore[assignment]
    return category_id


def _add_techniques(session: Session, shipped: ShippedData) -> None:
    papers: dict[str, tables.Paper] = {}
    relations: dict[tuple[str, str, str], str | None] = {}
    for tid, t in sorted(shipped.techniques.items()):
        session.add(
            tables.Technique(
                id=tid,
                name=t.name,
                category_id=t.category,
                unveiled_category_id=t.unveiled_category,
                level=_level_of(t.category, shipped),
                seeds=_json(t.seeds),
                extension=t.extension,
                mechanism=t.mechanism,
                modelable=t.cost_model.modelable,
                modelable_reason=t.cost_model.reason,
                plugin=t.cost_model.plugin,
                plugin_status=t.cost_model.plugin_status,
                plugin_params=_json(t.cost_model.params),
                captured_by=t.cost_model.captured_by,
                hardware_note=t.hardware.note,
                conflict_notes=t.conflict_notes,
                notes=t.notes,
                cost_effects=_json(t.cost_effects),
                references=_json(t.references),
                source_file=shipped.file_of("technique", tid),
            )
        )
        for alias in t.aliases:
            session.add(tables.TechniqueAlias(alias=alias.strip().lower(), technique_id=tid, display=alias))
        for capability in sorted(set(t.hardware.requires)):
            session.add(tables.HardwareRequirement(technique_id=tid, capability=capability))
        for position, paper in enumerate(t.papers):
            key = paper_key(paper)
            papers.setdefault(
                key,
                tables.Paper(
                    id=key,
                    title=paper.title,
                    first_author=paper.first_author,
                    year=paper.year,
                    arxiv=paper.arxiv,
                    venue=paper.venue,
                    url_hint=paper.url_hint,
                ),
            )
            session.add(tables.TechniquePaper(technique_id=tid, paper_id=key, position=position, note=paper.note))
        for position, result in enumerate(t.results):
            session.add(tables.ReportedResult(technique_id=tid, position=position, **result.model_dump()))
        for kind, others, note in (
            ("combines", t.compatible_with, None),
            ("conflicts", t.conflicts_with, t.conflict_notes),
        ):
            for other in others:
                a, b = sorted((tid, other))
                previous = relations.get((a, b, kind))
                relations[(a, b, kind)] = "; ".join(n for n in (previous, note) if n) or None
    session.add_all(papers.values())
    for (a, b, kind), note in sorted(relations.items()):
        session.add(tables.Relation(technique_a=a, technique_b=b, kind=kind, note=note))


def _add_hardware(session: Session, shipped: ShippedData) -> None:
    for hid, h in sorted(shipped.hardware.items()):
        # Scalar fields share their names with the table; lists become JSON, links two column groups.
        scalars = h.model_dump(exclude={"aliases", "peak_flops_dense", "interconnect", "host_link", "features",
                                        "sources", "unverified", "efficiency", "executes", "processors"})
        session.add(
            tables.Hardware(
                **scalars,
                **_link_columns("interconnect", h.interconnect),
                **_link_columns("host_link", h.host_link),
                **_efficiency_columns(h, shipped),
                features=_json(sorted(h.features)),
                executes=_json({dtype: [rule.rate, rule.source] for dtype, rule in h.executes.items()}),
                processors=_json({name: proc.model_dump() for name, proc in h.processors.items()}),
                sources=_json(h.sources),
                unverified=_json(h.unverified),
                source_file=shipped.file_of("hardware", hid),
            )
        )
        for dtype, peak in sorted(h.peak_flops_dense.items()):
            session.add(tables.HardwarePeak(hardware_id=hid, dtype=dtype, flops_per_s=peak))
        for alias in h.aliases:
            key = alias.strip().lower()
            if key != hid:
                session.add(tables.HardwareAlias(alias=key, hardware_id=hid, display=alias))


def _efficiency_columns(h: schemas.HardwareFile, shipped: ShippedData) -> dict[str, object]:
    """The device's own measured efficiency, else the first matching class default, else none (ideal)."""
    chosen: schemas.EfficiencyFile | None = h.efficiency
    if chosen is None and shipped.efficiency is not None:
        chosen = next((c for c in shipped.efficiency.classes if h.id in c.devices), None)
    if chosen is None:
        return {}
    source = chosen.source if h.efficiency else f"class default '{chosen.id}': {chosen.source}"
    return {
        "efficiency_compute_fraction": chosen.compute_fraction,
        "efficiency_bandwidth_fraction": chosen.bandwidth_fraction,
        "efficiency_kernel_overhead_s": chosen.kernel_overhead_s,
        "efficiency_source": source,
    }


def _link_columns(prefix: str, link: schemas.Link | None) -> dict[str, object]:
    return {
        f"{prefix}_kind": link.kind if link else None,
        f"{prefix}_bandwidth_bytes_per_s": link.bandwidth_bytes_per_s if link else None,
        f"{prefix}_note": link.note if link else None,
    }


def _add_models(session: Session, shipped: ShippedData) -> None:
    from llmeff.architectures import Architecture, count_parameters

    for mid, m in sorted(shipped.models.items()):
        file = shipped.file_of("model", mid)
        architecture = Architecture.from_hf_config(m.config, where=file)
        count = count_parameters(architecture)
        session.add(
            tables.Model(
                id=mid,
                name=m.name,
                family=m.family,
                hf_repo_id=m.hf_repo_id,
                model_type=architecture.model_type,
                config=_json(m.config),
                params_total=count.total,
                params_active=count.active,
                published_params_b=m.published_params_b,
                published_active_params_b=m.published_active_params_b,
                published_params_source=m.published_params_source,
                sources=_json(m.sources),
                unverified=_json(m.unverified),
                derived=_json(m.derived),
                notes=m.notes,
                source_file=file,
            )
        )
        for alias in m.aliases:
            key = alias.strip().lower()
            if key != mid:
                session.add(tables.ModelAlias(alias=key, model_id=mid, display=alias))


def write_shipped(conn, shipped: ShippedData, meta: dict[str, str]) -> None:
    """Replace the shipped tables in the transaction of the SQLAlchemy connection ``conn`` (the caller commits)."""
    from sqlmodel import SQLModel

    from llmeff.benchmarks import tables as bench_tables
    from llmeff.benchmarks.ingest import shipped_records
    from llmeff.kb.datafiles import measurement_files

    shipped_tables = [table.__table__ for table in tables.SHIPPED_TABLES]  # type: ignore[attr-defined]
    kept_tables = [table.__table__ for table in bench_tables.BENCHMARK_TABLES]  # type: ignore[attr-defined]
    # Dropping and recreating the shipped tables also migrates them to this schema version.
    SQLModel.metadata.drop_all(conn, tables=shipped_tables)
    SQLModel.metadata.create_all(conn, tables=shipped_tables)
    SQLModel.metadata.create_all(conn, tables=kept_tables)  # only where missing: user rows stay
    with Session(bind=conn, autoflush=False) as session:
        add_shipped(session, shipped)
        _flush_parents_first(session)
        session.exec(delete(bench_tables.Measurement).where(bench_tables.Measurement.origin == "shipped"))
        kept = set(session.exec(select(bench_tables.Measurement.id)).all())  # a user imported these first
        for csv_path in measurement_files(shipped.data_dir):
            session.add_all(shipped_records(shipped, csv_path, skip=kept))
        session.add_all(tables.Meta(key=k, value=v) for k, v in sorted(meta.items()))
        _flush_parents_first(session)


def _flush_parents_first(session: Session) -> None:
    """Write the pending rows table by table, parents before children.

    PostgreSQL checks every foreign key as the row arrives, and these tables have no ORM
    relationships from which the session could learn the order itself.
    """
    from sqlmodel import SQLModel

    pending = list(session.new)
    for row in pending:
        session.expunge(row)
    for table in SQLModel.metadata.sorted_tables:
        session.add_all(row for row in pending if row.__table__ is table)
        session.flush()
