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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Efficiency techniques for LLM inference: knowledge base, registries and cost model.

    Example: llmeff techniques tree
    """
    ctx.obj = {"db": db_file}


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
