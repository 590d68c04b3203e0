"""``llmeff db check``: verify the data files and the database built from them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llmeff.kb.check import cross_check
from llmeff.kb.load import load_data
from llmeff.techniques.registry import installed_plugin_ids


@dataclass(frozen=True)
class PluginLinks:
    installed: int  # linked to a plugin an installed package registers
    planned: int  # linked to a plugin of data/plugins.toml that is not implemented yet
    captured: int  # modelled by the architecture or hardware record itself
    not_modelable: int


@dataclass(frozen=True)
class VerifyReport:
    data_dir: str
    database: str | None
    techniques: int
    hardware: int
    models: int
    plugin_links: PluginLinks
    problems: tuple[str, ...] = field(default_factory=tuple)

    def summary_lines(self) -> list[str]:
        links = self.plugin_links
        verdict = "OK" if not self.problems else f"{len(self.problems)} problem(s)"
        return [
            f"data: {self.data_dir}",
            f"database: {self.database or 'not built (fix the data first)'}",
            f"{self.techniques} techniques, {self.hardware} hardware entries, {self.models} models",
            f"plugin links: {links.installed} installed, {links.planned} planned (not yet implemented), "
            f"{links.captured} captured by architecture/hardware records, {links.not_modelable} not modelable",
            f"check: {verdict}",
        ]


def verify(db: str | os.PathLike[str] | None = None) -> VerifyReport:
    """Every data file against its schema and the others, then the database's own integrity."""
    from llmeff import db as database
    from llmeff.errors import LlmeffError
    from llmeff.kb.api import KnowledgeBase

    installed = installed_plugin_ids()
    shipped = load_data()
    problems = [str(p) for p in shipped.problems + cross_check(shipped, installed_plugins=installed)]
    db_file = None
    if not problems:
        try:
            location = database.ensure_database(db, shipped.data_dir)
            with KnowledgeBase(database.open_read_only(location), location) as kb:
                problems += kb.integrity_problems()
                problems += _count_mismatches(kb, shipped)
            db_file = location.display()
        except LlmeffError as exc:
            problems.append(str(exc))
    cost_models = [t.cost_model for t in shipped.techniques.values()]
    links = PluginLinks(
        installed=sum(1 for c in cost_models if c.plugin in installed),
        planned=sum(1 for c in cost_models if c.plugin and c.plugin not in installed),
        captured=sum(1 for c in cost_models if c.captured_by),
        not_modelable=sum(1 for c in cost_models if c.modelable == "no"),
    )
    return VerifyReport(
        data_dir=str(shipped.data_dir),
        database=db_file,
        techniques=len(shipped.techniques),
        hardware=len(shipped.hardware),
        models=len(shipped.models),
        plugin_links=links,
        problems=tuple(problems),
    )


def _count_mismatches(kb, shipped) -> list[str]:
    counts = {c.table: c.rows for c in kb.status().counts}
    expected = {"technique": len(shipped.techniques), "hardware": len(shipped.hardware), "model": len(shipped.models)}
    return [
        f"database table {table} has {counts.get(table)} rows, data/ has {n} entries"
        for table, n in expected.items()
        if counts.get(table) != n
    ]
