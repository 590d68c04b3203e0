"""Rich rendering shared by the command modules, and the JSON switch."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmeff.serialize import to_json

# Piped output (files, `| less`) gets a wide fixed width instead of Rich's 80 columns, so tables
# keep one row per line; a terminal, or an explicit COLUMNS, keeps its own width.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)


def emit_json(value: object) -> None:
    # print(), not console.print(): Rich would wrap and colour the JSON.
    print(to_json(value))


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    caption: str | None = None,
    wrap: Sequence[str] = (),
) -> None:
    """A table; only the columns named in ``wrap`` (free text) may wrap, ids and numbers never do."""
    out = Table(
        title=escape(title) if title else None,
        caption=escape(caption) if caption else None,
        box=box.SIMPLE_HEAD,
        header_style="bold",
        caption_justify="left",
    )
    for column in columns:
        out.add_column(column, no_wrap=column not in wrap, overflow="fold")
    for row in rows:
        # Text, not str: data such as "[full]" or "W[4]" must print as written, not as Rich markup.
        out.add_row(*(Text("-" if cell is None else str(cell)) for cell in row))
    console.print(out)


def fields(title: str, pairs: Iterable[tuple[str, object]]) -> None:
    """A two-column key/value table for one record."""
    out = Table(title=escape(title), show_header=False, title_justify="left", title_style="bold")
    out.add_column("field", style="bold", no_wrap=True)
    out.add_column("value", overflow="fold")
    for key, value in pairs:
        out.add_row(key, Text("-" if value is None or value == "" else str(value)))
    console.print(out)


def bullet_list(title: str, items: Iterable[str]) -> None:
    items = list(items)
    if not items:
        return
    console.print(Text(title, style="bold"))
    for item in items:
        console.print(Text(f"  - {item}"), highlight=False)


class progress_bar:
    """A transient bar on a terminal (nothing on pipes and files); yields a ``(done, total)`` callback."""

    def __init__(self, description: str, *, enabled: bool = True):
        from rich.progress import Progress

        self._bar = Progress(transient=True, disable=not enabled or not console.is_terminal, console=console)
        self._description = description

    def __enter__(self):
        self._bar.__enter__()
        task = self._bar.add_task(self._description, total=None)
        return lambda done, total: self._bar.update(task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)
