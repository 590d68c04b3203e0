"""``llmeff techniques``: the taxonomy tree, listings, one entry, search."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.tree import Tree

from llmeff.cli import render
from llmeff.cli.options import JSON, db_path

app = typer.Typer(help="Browse the technique knowledge base.", no_args_is_help=True)


def _kb(ctx: typer.Context):
    from llmeff.kb.api import open_kb

    return open_kb(db_path(ctx))


def _plugin_cell(t) -> str:
    if t.plugin:
        return f"{t.plugin}" + ("*" if t.plugin_status == "planned" else "")
    if t.captured_by:
        return f"({t.captured_by})"
    return "-"


def _legend(rows) -> str | None:
    """Explain only the marks that appear in the table."""
    marks = []
    if any(t.plugin and t.plugin_status == "planned" for t in rows):
        marks.append("* planned plugin, not yet implemented")
    if any(not t.plugin and t.captured_by for t in rows):
        marks.append("(architecture) / (hardware): captured by that record")
    return "; ".join(marks) or None


@app.command()
def tree(
    ctx: typer.Context,
    which: str = typer.Option("survey", "--tree", help="survey (arXiv 2404.14294) or unveiled (arXiv 2402.16363)."),
    json: bool = JSON,
) -> None:
    """Show the taxonomy with each technique under its leaf.

    Example: llmeff techniques tree --tree unveiled
    """
    with _kb(ctx) as kb:
        roots = kb.tree(which)
    if json:
        render.emit_json(roots)
        return
    title = {
        "survey": "A Survey on Efficient Inference for LLMs (arXiv 2404.14294)",
        "unveiled": "LLM Inference Unveiled (arXiv 2402.16363)",
    }[which]
    top = Tree(f"[bold]{title}[/bold]")
    for root in roots:
        _add(top, root)
    render.console.print(top)


def _add(parent: Tree, node) -> None:
    c = node.category
    section = f"§{c.survey_section} " if c.survey_section else ""
    marks = " [dim](extension)[/dim]" if c.extension else ""
    label = f"[bold cyan]{escape(section + c.name)}[/bold cyan] [dim]{c.id} · {node.technique_count()}[/dim]{marks}"
    branch = parent.add(label)
    for child in node.children:
        _add(branch, child)
    for t in node.techniques:
        branch.add(f"{t.id} [dim]— {escape(t.name)} \\[{t.modelable}][/dim]", highlight=False)


@app.command("list")
def list_(
    ctx: typer.Context,
    level: str = typer.Option(None, help="data-level, model-level or system-level."),
    category: str = typer.Option(None, help="A category id from 'llmeff techniques tree' (either tree)."),
    requires: str = typer.Option(None, help="Only entries that require this capability, e.g. fp8-matmul, npu."),
    hardware: str = typer.Option(None, help="Only entries whose hardware requirements this device meets."),
    modelable: str = typer.Option(None, help="full, partial, no, or yes (full or partial)."),
    text: str = typer.Option(None, help="Only entries matching this text (as 'techniques search')."),
    json: bool = JSON,
) -> None:
    """List technique entries, optionally filtered.

    Example: llmeff techniques list --level model-level --hardware h100-sxm-80gb --modelable yes
    """
    from llmeff.kb.api import TechniqueFilter

    where = TechniqueFilter(
        level=level, category=category, requires=requires, runs_on=hardware, modelable=modelable, text=text
    )
    with _kb(ctx) as kb:
        rows = kb.techniques(where)
    if json:
        render.emit_json(rows)
        return
    render.table(
        f"{len(rows)} techniques",
        ["id", "modelable", "plugin", "requires", "papers/results"],
        [(t.id, t.modelable, _plugin_cell(t), ", ".join(t.requires), f"{t.paper_count}/{t.result_count}") for t in rows],
        caption=_legend(rows),
    )


@app.command()
def show(ctx: typer.Context, technique_id: str = typer.Argument(..., help="Id or alias, e.g. AWQ."), json: bool = JSON) -> None:
    """Show everything about one entry.

    Example: llmeff techniques show weight-only-quant-awq
    """
    with _kb(ctx) as kb:
        d = kb.technique(technique_id)
    if json:
        render.emit_json(d)
        return
    s = d.summary
    path = " > ".join(c.name for c in d.path)
    unveiled = " > ".join(c.name for c in d.unveiled_path) or None
    if s.plugin:
        status = "installed" if d.plugin_installed else "planned, not yet implemented"
        settings = ", ".join(f"{k}={v}" for k, v in d.plugin_params.items())
        plugin = f"{s.plugin} ({status})" + (f" with {settings}" if settings else "")
    elif s.captured_by:
        plugin = f"none needed: captured by the {s.captured_by} record"
    else:
        plugin = "none: not modelable"
    render.fields(
        f"{s.name} [{s.id}]",
        [
            ("aliases", ", ".join(s.aliases)),
            ("survey path", path),
            ("unveiled path", unveiled),
            ("seeds", ", ".join(d.seeds) + (" (extension)" if d.extension else "")),
            ("mechanism", d.mechanism),
            ("modelable", f"{s.modelable}: {d.modelable_reason}"),
            ("cost-model plugin", plugin),
            ("requires", ", ".join(s.requires)),
            ("hardware note", d.hardware_note),
            ("notes", d.notes),
            ("data file", d.source_file),
        ],
    )
    if d.papers:
        render.table(
            "Papers",
            ["title", "first author", "year", "arXiv / venue"],
            [(p.title, p.first_author, p.year, p.arxiv or p.venue or p.url_hint) for p in d.papers],
            wrap=("title", "arXiv / venue"),
        )
    render.bullet_list("References", d.references)
    if d.results:
        render.table(
            "Reported results",
            ["metric", "value", "claim", "model", "hardware", "baseline", "source"],
            [
                (r.metric, _value(r.value), r.claim, r.model, r.hardware, r.baseline, f"{r.source} ({r.source_kind})")
                for r in d.results
            ],
            wrap=("claim", "model", "hardware", "baseline", "source"),
        )
    else:
        render.console.print("[dim]No quantitative result recorded yet.[/dim]")
    render.bullet_list("Combines with", [f"{r.id} ({r.name})" for r in d.combines_with])
    render.bullet_list(
        "Conflicts with", [f"{r.id} ({r.name})" + (f": {r.note}" if r.note else "") for r in d.conflicts_with]
    )
    render.bullet_list("Cost effects", [f"{k}: {v}" for k, v in d.cost_effects.items()])


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


@app.command()
def search(ctx: typer.Context, text: str = typer.Argument(..., help="Words to find."), json: bool = JSON) -> None:
    """Find entries by name, alias, mechanism or paper (title, first author, arXiv id).

    Example: llmeff techniques search "kv cache quantization"
    """
    with _kb(ctx) as kb:
        hits = kb.search(text)
    if json:
        render.emit_json(hits)
        return
    render.table(
        f"{len(hits)} matches for '{text}'",
        ["id", "name", "matched in"],
        [(h.technique.id, h.technique.name, ", ".join(h.matched_in)) for h in hits],
        wrap=("name",),
    )


@app.command()
def plugins(ctx: typer.Context, json: bool = JSON) -> None:
    """List the cost-model plugins: registered ones (with their distribution) and planned ones.

    Example: llmeff techniques plugins
    """
    from llmeff.techniques.registry import load_plugins, plugin_infos

    with _kb(ctx) as kb:
        usage = kb.plugin_usage()
    infos = plugin_infos()
    loaded = load_plugins()
    rows = []
    for pid in sorted(set(infos) | set(usage)):
        plugin = loaded.get(pid)
        rows.append({
            "id": pid,
            "distribution": infos[pid].distribution if pid in infos else None,
            "stage": plugin.stage if plugin else None,
            "summary": plugin.summary if plugin else None,
            "parameters": _parameters(plugin) if plugin else {},
            "status": "installed" if plugin else "planned",
            "used_by": usage.get(pid, []),
        })
    if json:
        render.emit_json(rows)
        return
    render.table(
        f"{sum(r['status'] == 'installed' for r in rows)} plugins installed, "
        f"{sum(r['status'] == 'planned' for r in rows)} planned",
        ["id", "stage", "distribution", "parameters", "used by"],
        [(r["id"], r["stage"] or "(planned)", r["distribution"],
          ", ".join(f"{k}={v}" for k, v in r["parameters"].items()), ", ".join(r["used_by"])) for r in rows],
        wrap=("parameters", "used by"),
    )


def _parameters(plugin) -> dict:
    """A plugin's parameters and their defaults."""
    import dataclasses

    return {f.name: f.default for f in dataclasses.fields(plugin.Params)}
