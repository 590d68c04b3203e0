"""Tables: typed rows, written to CSV with fixed number formats and shown in the documents.

A column has a machine key (the CSV header, with its unit) and, if the documents show it, a
header and a formatter for people. The CSV is the data; the documents are a view of it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Value = str | int | float | bool | None


@dataclass(frozen=True)
class Column:
    key: str  # CSV header, e.g. "tpot_ms"
    header: str | None = None  # None: CSV only
    show: Callable[[Value], str] | None = None  # display formatter (default: str)
    wrap: bool = False  # free text that may wrap in the documents


@dataclass(frozen=True)
class Table:
    name: str  # the CSV file is <name>.csv
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Value, ...], ...]
    caption: str = ""

    def csv_text(self) -> str:
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow([csv_value(v) for v in row])
        return out.getvalue()

    def shown(self) -> tuple[list[Column], list[list[str]]]:
        """The displayed columns and their formatted cells."""
        picked = [i for i, c in enumerate(self.columns) if c.header is not None]
        columns = [self.columns[i] for i in picked]
        rows = [[_display(self.columns[i], row[i]) for i in picked] for row in self.rows]
        return columns, rows


def csv_value(value: Value) -> str:
    """Fixed formats: 6 significant digits for floats, true/false, empty for missing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _display(column: Column, value: Value) -> str:
    if value is None or value == "":
        return "-"
    if column.show is not None:
        return column.show(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# Display formatters: numbers as people read them (decimal prefixes, as datasheets do).
def ms(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"


def rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def gb(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def percent(value: float) -> str:
    return f"{value:+.1f}%"


def share(value: float) -> str:
    return f"{value:.0f}%"


def si(value: float) -> str:
    from llmeff import units

    return units.si(value, "").strip()


def columns(*specs: Sequence) -> tuple[Column, ...]:
    """``columns(("tpot_ms", "TPOT (ms)", ms), ("fits", "fits"), ("note",))``."""
    return tuple(Column(*spec) for spec in specs)
