"""The knowledge base as a Python API: ``llmeff.open_kb()`` and what it answers.

The CLI is a thin layer over this class; a notebook gets the same typed records.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from llmeff import backend, db
from llmeff.backend import Location
from llmeff.errors import InvalidInputError, UnknownIdError
from llmeff.hardware.capabilities import capabilities
from llmeff.hardware.registry import hardware_spec, hardware_specs
from llmeff.hardware.specs import HardwareSpec
from llmeff.kb import queries
from llmeff.kb.models import model_record, model_records
from llmeff.kb.records import (
    DatabaseStatus,
    ModelRecord,
    SearchHit,
    TableCount,
    TechniqueDetail,
    TechniqueSummary,
    TreeNode,
)
from llmeff.kb.vocabulary import CAPABILITIES, LEVELS, MODELABLE
from llmeff.techniques.registry import installed_plugin_ids


@dataclass(frozen=True)
class TechniqueFilter:
    """Filters of ``llmeff techniques list``; every field left None matches everything."""

    level: str | None = None
    category: str | None = None  # any category on the survey or the unveiled path
    requires: str | None = None  # a capability tag the technique requires
    runs_on: str | None = None  # a hardware id: only techniques whose requirements it meets
    modelable: str | None = None  # full, partial, no, or "yes" (full or partial)
    text: str | None = None


def open_kb(db_path: str | os.PathLike[str] | None = None) -> "KnowledgeBase":
    """Open (building on first use) the knowledge base at ``db_path`` (a file or a server URL) or the default."""
    location = db.ensure_database(db_path)
    return KnowledgeBase(db.open_read_only(location), location)


class KnowledgeBase:
    def __init__(self, conn, location: Location):
        self._conn = conn
        self.location = location

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- techniques ---------------------------------------------------------------------------

    def techniques(self, where: TechniqueFilter = TechniqueFilter()) -> list[TechniqueSummary]:
        rows = queries.all_summaries(self._conn)
        cats = queries.categories(self._conn)
        if where.level is not None:
            _check_choice("level", where.level, LEVELS)
            rows = [t for t in rows if t.level == where.level]
        if where.category is not None:
            if where.category not in cats:
                raise UnknownIdError("category", where.category, cats)
            rows = [t for t in rows if where.category in _category_ids(t, cats)]
        if where.requires is not None:
            _check_choice("requires", where.requires, CAPABILITIES)
            rows = [t for t in rows if where.requires in t.requires]
        if where.runs_on is not None:
            have = capabilities(self.hardware(where.runs_on))
            rows = [t for t in rows if set(t.requires) <= have]
        if where.modelable is not None:
            _check_choice("modelable", where.modelable, MODELABLE + ("yes",))
            wanted = {"full", "partial"} if where.modelable == "yes" else {where.modelable}
            rows = [t for t in rows if t.modelable in wanted]
        if where.text:
            hits = {hit.technique.id for hit in self.search(where.text)}
            rows = [t for t in rows if t.id in hits]
        return rows

    def technique(self, technique_id: str) -> TechniqueDetail:
        """Everything about one entry; ``technique_id`` may also be an alias such as 'AWQ'."""
        return queries.technique_detail(self._conn, technique_id, installed_plugins=installed_plugin_ids())

    def search(self, text: str) -> list[SearchHit]:
        """Entries whose name, alias, mechanism or paper (title, author, arXiv id) match every word.

        Ranked by where each word matched (id, name and aliases above papers, papers above the
        mechanism), with a bonus when the whole phrase appears in one field.
        """
        phrase = _normalise(text)
        words = phrase.split()
        if not words:
            raise InvalidInputError("search text is empty")
        summaries = {t.id: t for t in queries.all_summaries(self._conn)}
        hits = []
        for tid, fields in queries.search_corpus(self._conn).items():
            texts = {name: _normalise(" ".join(values)) for name, values in fields.items()}
            best = [max((_FIELD_WEIGHTS[n] for n, t in texts.items() if word in t), default=0) for word in words]
            if not all(best):
                continue
            matched = tuple(n for n in _FIELD_WEIGHTS if any(word in texts[n] for word in words))
            bonus = 10 if any(phrase in texts[n] for n in ("id", "name", "alias", "mechanism")) else 0
            hits.append(SearchHit(technique=summaries[tid], matched_in=matched, score=sum(best) + bonus))
        return sorted(hits, key=lambda h: (-h.score, h.technique.id))

    def tree(self, which: str = "survey") -> list[TreeNode]:
        """The category tree (``survey``: 2404.14294; ``unveiled``: 2402.16363) with techniques at their leaves."""
        _check_choice("tree", which, ("survey", "unveiled"))
        cats = queries.categories(self._conn)
        placed: dict[str, list[TechniqueSummary]] = {}
        for t in queries.all_summaries(self._conn):
            home = t.category_id if which == "survey" else t.unveiled_category_id
            if home is not None:
                placed.setdefault(home, []).append(t)

        def node(category_id: str) -> TreeNode:
            children = tuple(node(c.id) for c in cats.values() if c.parent_id == category_id)
            return TreeNode(category=cats[category_id], children=children, techniques=tuple(placed.get(category_id, [])))

        return [node(c.id) for c in cats.values() if c.parent_id is None and c.tree == which]

    def plugin_usage(self) -> dict[str, list[str]]:
        """For every plugin id the knowledge base links to, the technique entries that use it."""
        usage: dict[str, list[str]] = {}
        for row in self._conn.execute("SELECT plugin, id FROM technique WHERE plugin IS NOT NULL ORDER BY id"):
            usage.setdefault(row[0], []).append(row[1])
        return usage

    # -- registries ---------------------------------------------------------------------------

    def hardware_list(self, *, kind: str | None = None, vendor: str | None = None) -> list[HardwareSpec]:
        specs = hardware_specs(self._conn)
        if kind is not None:
            _check_choice("kind", kind, tuple(sorted({s.kind for s in specs})))
            specs = [s for s in specs if s.kind == kind]
        if vendor is not None:
            _check_choice("vendor", vendor, tuple(sorted({s.vendor for s in specs})))
            specs = [s for s in specs if s.vendor == vendor]
        return specs

    def hardware(self, hardware_id: str) -> HardwareSpec:
        return hardware_spec(self._conn, hardware_id)

    def models(self, *, family: str | None = None) -> list[ModelRecord]:
        records = model_records(self._conn)
        if family is not None:
            _check_choice("family", family, tuple(sorted({m.family for m in records})))
            records = [m for m in records if m.family == family]
        return records

    def model(self, model_id: str) -> ModelRecord:
        return model_record(self._conn, model_id)

    # -- the database itself ------------------------------------------------------------------

    def status(self) -> DatabaseStatus:
        from llmeff.kb.datafiles import content_hash, default_data_dir

        state = db.read_state(self.location)
        wanted = content_hash(default_data_dir())
        counts = tuple(
            TableCount(table=name, rows=self._conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
            for name in sorted(backend.table_names(self._conn))
        )
        return DatabaseStatus(
            backend=self.location.backend,
            path=self.location.display(),
            schema_version=state.schema_version,
            content_hash=state.content_hash,
            data_content_hash=wanted,
            up_to_date=state.content_hash == wanted and state.schema_version == db.SCHEMA_VERSION,
            llmeff_version=state.llmeff_version,
            size_bytes=self._size_bytes(),
            counts=counts,
        )

    def _size_bytes(self) -> int:
        if self.location.is_sqlite:
            return self.location.path.stat().st_size  # type: ignore[union-attr]
        return self._conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]

    def integrity_problems(self) -> list[str]:
        """SQLite's own integrity and foreign-key checks, as readable lines (empty when sound).

        A PostgreSQL server checks foreign keys on every write and its pages itself: nothing to add.
        """
        if not self.location.is_sqlite:
            return []
        problems = [r[0] for r in self._conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
        for table, rowid, parent, _ in self._conn.execute("PRAGMA foreign_key_check"):
            problems.append(f"table {table} row {rowid} points at a missing {parent} row")
        return problems


_FIELD_WEIGHTS = {"id": 8, "name": 8, "alias": 8, "paper": 3, "mechanism": 1}


def _normalise(text: str) -> str:
    """Lower case, with hyphens and underscores as spaces: 'KV-cache' matches 'kv cache'."""
    return " ".join(re.sub(r"[-_/]", " ", text.lower()).split())


def _category_ids(t: TechniqueSummary, cats) -> set[str]:
    ids = {c.id for c in queries.ancestors(t.category_id, cats)}
    return ids | {c.id for c in queries.ancestors(t.unveiled_category_id, cats)}


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidInputError(f"'{value}' is not one of: {', '.join(choices)}", field=option)
