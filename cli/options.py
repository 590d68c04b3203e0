"""Options shared by several commands."""

from __future__ import annotations

import typer

JSON = typer.Option(False, "--json", help="Print the same data as JSON (for scripts).")


def db_path(ctx: typer.Context) -> str | None:
    """The --db given to the root command (None: LLMEFF_HOME or the default location)."""
    return (ctx.find_root().obj or {}).get("db")
