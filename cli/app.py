"""The ``llmeff`` command: the Typer root and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from llmeff import __version__
from llmeff.cli import analyze, bench, db, hardware, models, plan, report, techniques

app = typer.Typer(
    name="llmeff",
    help="Efficiency techniques for LLM inference: knowledge base, registries and cost model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(techniques.app, name="techniques")
app.add_typer(hardware.app, name="hardware")
app.add_typer(models.app, name="models")
app.add_typer(db.app, name="db")
app.add_typer(bench.app, name="bench")
app.command("analyze")(analyze.analyze)
app.command("plan")(plan.plan)
app.command("report")(report.report)


def _version(value: bool) -> None:
    if value:
        print(f"llmeff {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db_file: Path = typer.Option(
        None, "--db", help="Database file (default: $LLMEFF_HOME/llmeff.db or ~/.local/share/llmeff/llmeff.db)."
    ),
    db_url: str = typer.Option(
        None, "--db-url", metavar="URL",
        help="A PostgreSQL server instead of a file, e.g. postgresql+psycopg://user@host/dbname "
             "(default: $LLMEFF_DATABASE_URL).",
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Efficiency techniques for LLM inference: knowledge base, registries and cost model.

    Example: llmeff techniques tree

    Team registry: LLMEFF_DATABASE_URL=postgresql+psycopg://me@dbhost/llmeff llmeff db init
    """
    if db_url is not None and "://" not in db_url:
        raise typer.BadParameter("expected a URL such as postgresql+psycopg://user@host/dbname", param_hint="--db-url")
    if db_file is not None and db_url is not None:
        raise typer.BadParameter("give --db or --db-url, not both", param_hint="--db-url")
    ctx.obj = {"db": db_url if db_url is not None else db_file}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: library errors print one line and give 1, usage errors 2."""
    from llmeff.errors import LlmeffError

    try:
        # Standalone mode: Typer itself prints usage errors (exit 2) and --help, then raises SystemExit.
        app(args=argv, prog_name="llmeff")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except LlmeffError as exc:
        if os.environ.get("LLMEFF_DEBUG") == "1":
            raise
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
