"""Read queries over the knowledge base (no ORM on the read path).

The SQL is portable (SQLite and PostgreSQL): lists such as a technique's aliases are gathered in
Python rather than with each engine's own string aggregate.
"""

from __future__ import annotations

import json

from llmeff.db import resolve_id
from llmeff.kb.records import (
    CategoryRef,
    PaperRef,
    RelatedTechnique,
    ReportedResult,
    TechniqueDetail,
    TechniqueSummary,
)

_SUMMARY_SQL = """
SELECT t.id, t.name, t.level, t.category_id, c.name AS category_name, t.unveiled_category_id,
       t.modelable, t.plugin, t.plugin_status, t.captured_by,
       (SELECT count(*) FROM techniquepaper WHERE technique_id = t.id) AS paper_count,
       (SELECT count(*) FROM reportedresult WHERE technique_id = t.id) AS result_count
FROM technique t JOIN category c ON c.id = t.category_id
"""


def _lists(conn, sql: str) -> dict[str, tuple[str, ...]]:
    """(technique id, value) rows, in the query's order, as one tuple per technique."""
    out: dict[str, list[str]] = {}
    for tid, value in conn.execute(sql):
        out.setdefault(tid, []).append(value)
    return {tid: tuple(values) for tid, values in out.items()}


def _requires_and_aliases(conn) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    requires = _lists(conn, "SELECT technique_id, capability FROM hardwarerequirement ORDER BY technique_id, capability")
    aliases = _lists(conn, "SELECT technique_id, display FROM techniquealias ORDER BY technique_id, display")
    return requires, aliases


def _summary(row, requires: dict[str, tuple[str, ...]], aliases: dict[str, tuple[str, ...]]) -> TechniqueSummary:
    return TechniqueSummary(
        id=row["id"],
        name=row["name"],
        level=row["level"],
        category_id=row["category_id"],
        category_name=row["category_name"],
        unveiled_category_id=row["unveiled_category_id"],
        modelable=row["modelable"],
        plugin=row["plugin"],
        plugin_status=row["plugin_status"],
        captured_by=row["captured_by"],
        requires=requires.get(row["id"], ()),
        aliases=aliases.get(row["id"], ()),
        paper_count=row["paper_count"],
        result_count=row["result_count"],
    )


def all_summaries(conn) -> list[TechniqueSummary]:
    requires, aliases = _requires_and_aliases(conn)
    return [_summary(row, requires, aliases) for row in conn.execute(_SUMMARY_SQL + " ORDER BY t.id")]


def categories(conn) -> dict[str, CategoryRef]:
    rows = conn.execute(
        "SELECT id, name, tree, parent_id, survey_section, extension, source, note FROM category ORDER BY position"
    )
    return {row["id"]: CategoryRef(**{k: row[k] for k in row.keys()}) for row in rows}


def ancestors(category_id: str | None, cats: dict[str, CategoryRef]) -> tuple[CategoryRef, ...]:
    """The chain from the root down to ``category_id``."""
    chain: list[CategoryRef] = []
    while category_id is not None and category_id in cats:
        chain.append(cats[category_id])
        category_id = cats[category_id].parent_id
    return tuple(reversed(chain))


def resolve_technique_id(conn, wanted: str) -> str:
    """A technique id from its id or any alias (case-insensitive); unknown names suggest."""
    return resolve_id(conn, kind="technique", table="technique", alias_table="techniquealias", wanted=wanted)


def technique_detail(conn, wanted: str, *, installed_plugins: frozenset[str]) -> TechniqueDetail:
    tid = resolve_technique_id(conn, wanted)
    summary = _summary(conn.execute(_SUMMARY_SQL + " WHERE t.id = ?", (tid,)).fetchone(), *_requires_and_aliases(conn))
    row = conn.execute("SELECT * FROM technique WHERE id = ?", (tid,)).fetchone()
    cats = categories(conn)
    papers = tuple(
        PaperRef(**{k: r[k] for k in r.keys()})
        for r in conn.execute(
            """SELECT p.id, p.title, p.first_author, p.year, p.arxiv, p.venue, p.url_hint, tp.note
               FROM techniquepaper tp JOIN paper p ON p.id = tp.paper_id
               WHERE tp.technique_id = ? ORDER BY tp.position""",
            (tid,),
        )
    )
    results = tuple(
        ReportedResult(**{k: r[k] for k in r.keys()})
        for r in conn.execute(
            """SELECT claim, metric, value, baseline, model, hardware, source, source_kind
               FROM reportedresult WHERE technique_id = ? ORDER BY position""",
            (tid,),
        )
    )
    return TechniqueDetail(
        summary=summary,
        path=ancestors(row["category_id"], cats),
        unveiled_path=ancestors(row["unveiled_category_id"], cats),
        seeds=tuple(json.loads(row["seeds"])),
        extension=bool(row["extension"]),
        mechanism=row["mechanism"],
        modelable_reason=row["modelable_reason"],
        plugin_installed=row["plugin"] in installed_plugins,
        plugin_params=json.loads(row["plugin_params"]),
        hardware_note=row["hardware_note"],
        notes=row["notes"],
        cost_effects=json.loads(row["cost_effects"]),
        papers=papers,
        references=tuple(json.loads(row["references"])),
        results=results,
        combines_with=_related(conn, tid, "combines"),
        conflicts_with=_related(conn, tid, "conflicts"),
        source_file=row["source_file"],
    )


def _related(conn, tid: str, kind: str) -> tuple[RelatedTechnique, ...]:
    rows = conn.execute(
        """SELECT t.id, t.name, r.note FROM relation r
           JOIN technique t ON t.id = CASE WHEN r.technique_a = ? THEN r.technique_b ELSE r.technique_a END
           WHERE r.kind = ? AND (r.technique_a = ? OR r.technique_b = ?) ORDER BY t.id""",
        (tid, kind, tid, tid),
    )
    return tuple(RelatedTechnique(id=r["id"], name=r["name"], note=r["note"]) for r in rows)


def search_corpus(conn) -> dict[str, dict[str, list[str]]]:
    """Per technique, the texts a search looks in: name, aliases, mechanism, paper titles."""
    corpus: dict[str, dict[str, list[str]]] = {}
    for row in conn.execute("SELECT id, name, mechanism FROM technique"):
        corpus[row["id"]] = {"id": [row["id"]], "name": [row["name"]], "alias": [], "mechanism": [row["mechanism"]],
                             "paper": []}
    for row in conn.execute("SELECT technique_id, display FROM techniquealias"):
        corpus[row[0]]["alias"].append(row[1])
    for row in conn.execute(
        "SELECT tp.technique_id, p.title, p.first_author, p.arxiv FROM techniquepaper tp JOIN paper p ON p.id = tp.paper_id"
    ):
        corpus[row[0]]["paper"].append(" ".join(x for x in (row[1], row[2], row[3]) if x))
    return corpus
