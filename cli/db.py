"""``llmeff db``: build, describe and verify the knowledge-base database."""

from __future__ import annotations

import typer

from llmeff.cli import render
from llmeff.cli.options import JSON, db_path

app = typer.Typer(help="Build, describe and verify the database.", no_args_is_help=True)


@app.command()
def init(ctx: typer.Context, json: bool = JSON) -> None:
    """(Re)build the shipped part of the database from data/ (user-imported rows are kept).

    On PostgreSQL this creates the schema and loads the shipped data in one transaction.

    Example: llmeff --db ./kb.db db init
    """
    from llmeff import db

    location = db.build_database(db_path(ctx))
    state = db.read_state(location)
    if json:
        render.emit_json(state)
        return
    render.console.print(f"Built {state.path} (schema {state.schema_version}, data {state.content_hash[:12]})",
                         highlight=False)


@app.command()
def status(ctx: typer.Context, json: bool = JSON) -> None:
    """Describe the database: backend, location (password masked), schema version, data hash, row counts.

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
            ("backend", st.backend),
            ("location", st.path),
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


@app.command()
def copy(
    ctx: typer.Context,
    to: str = typer.Option(None, "--to", metavar="URL", help="Push this registry's user rows to that database."),
    from_: str = typer.Option(None, "--from", metavar="URL", help="Pull that database's user rows into this one."),
    json: bool = JSON,
) -> None:
    """Copy user-imported measurements and the calibration between registries, skipping rows already there.

    This registry is the one --db / --db-url (or the environment) names; --to or --from names the
    other (a URL, or a file). Example: llmeff db copy --to postgresql+psycopg://me@dbhost/llmeff
    """
    from llmeff.benchmarks.transfer import copy_user_rows

    if (to is None) == (from_ is None):
        raise typer.BadParameter("give exactly one of --to and --from", param_hint="--to")
    here = db_path(ctx)
    result = copy_user_rows(here, to) if to is not None else copy_user_rows(from_, here)
    if json:
        render.emit_json(result)
        return
    render.console.print(f"Copied {result.source} -> {result.target}", highlight=False, soft_wrap=True)
    render.console.print(f"{result.measurements_copied} measurements ({result.measurements_skipped} already there), "
                         f"{result.calibrations_copied} calibrations ({result.calibrations_skipped} already there)",
                         highlight=False)
