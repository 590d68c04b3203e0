"""``llmeff db``: build, describe and verify the knowledge-base database."""

from __future__ import annotations

import typer

from llmeff.cli import render
from llmeff.cli.options import JSON, db_path

app = typer.Typer(help="Build, describe and verify the database.", no_args_is_help=True)


@app.command()
def init(ctx: typer.Context, json: bool = JSON) -> None:
    """(Re)build the shipped part of the database from data/ (user-imported rows are kept).

    Example: llmeff --db ./kb.db db init
    """
    from llmeff import db

    path = db.database_path(db_path(ctx))
    db.build_database(path)
    state = db.read_state(path)
    if json:
        render.emit_json(state)
        return
    render.console.print(f"Built {path} (schema {state.schema_version}, data {state.content_hash[:12]})")


@app.command()
def status(ctx: typer.Context, json: bool = JSON) -> None:
    """Describe the database: location, schema version, data hash, row counts.

    Example: llmeff db status
    """
    from llmeff.kb.api import open_kb

    with open_kb(db_path(ctx)) as kb:
        st = kb.status()
    if json:
        render.emit_json(st)
        return
    render.fields(
        "llmeff database",
        [
            ("path", st.path),
            ("size", f"{st.size_bytes / 1e6:.2f} MB"),
            ("schema version", st.schema_version),
            ("data content hash", st.content_hash),
            ("up to date", "yes" if st.up_to_date else "no: the next command rebuilds it"),
            ("built by llmeff", st.llmeff_version),
        ],
    )
    render.table("Rows", ["table", "rows"], [(c.table, c.rows) for c in st.counts])


@app.command()
def check(ctx: typer.Context, json: bool = JSON) -> None:
    """Verify data/ and the database: schemas, sources, relation ids, plugin links, integrity.

    Exit code 1 when any problem is found. Example: llmeff db check
    """
    from llmeff.kb.verify import verify

    report = verify(db_path(ctx))
    if json:
        render.emit_json(report)
    else:
        for line in report.summary_lines():
            render.console.print(line, highlight=False)
        for problem in report.problems:
            render.console.print(f"[red]problem[/red] {problem}", highlight=False)
    if report.problems:
        raise typer.Exit(1)
