"""Options shared by several commands."""

from __future__ import annotations

import typer

JSON = typer.Option(False, "--json", help="Print the same data as JSON (for scripts).")


def db_path(ctx: typer.Context) -> str | None:
    """The --db file or --db-url given to the root command (None: LLMEFF_DATABASE_URL, LLMEFF_HOME or the default)."""
    return (ctx.find_root().obj or {}).get("db")
