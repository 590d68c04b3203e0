"""A report as sections of text, tables and figures, rendered to Markdown and to one HTML page.

The HTML page embeds its figures as data: URIs and its style inline, so it opens offline and
fetches nothing; its tables wrap free text so that they fit a laptop screen.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from llmeff.report.tables import Table


@dataclass(frozen=True)
class Figure:
    file: str  # e.g. "roofline-a100-sxm4-80gb.png"
    caption: str
    png: bytes


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: tuple[str, ...] = ()
    figures: tuple[Figure, ...] = ()
    tables: tuple[Table, ...] = ()
    bullets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Report:
    title: str
    summary: tuple[str, ...]  # the lines a reader needs first
    sections: tuple[Section, ...]
    csv_only: tuple[Table, ...] = field(default_factory=tuple)  # data behind the figures

    @property
    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables] + list(self.csv_only)

    @property
    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(report: Report) -> str:
    out = [f"# {report.title}", ""]
    out += [line for line in report.summary] + [""]
    for section in report.sections:
        out += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            out += [paragraph, ""]
        if section.bullets:
            out += [f"- {b}" for b in section.bullets] + [""]
        for figure in section.figures:
            out += [f"![{figure.caption}]({figure.file})", "", f"*{figure.caption}*", ""]
        for table in section.tables:
            columns, rows = table.shown()
            out += [f"**{table.title}** ([{table.name}.csv]({table.name}.csv))", ""]
            out.append("| " + " | ".join(_md_cell(c.header) for c in columns) + " |")
            out.append("|" + "|".join("---" if c.wrap or not _numeric(rows, i) else "---:"
                                      for i, c in enumerate(columns)) + "|")
            out += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
            out.append("")
            if table.caption:
                out += [table.caption, ""]
    if report.csv_only:
        out += ["## Data files", ""]
        out += [f"- [{t.name}.csv]({t.name}.csv): {t.title}" for t in report.csv_only] + [""]
    return "\n".join(out).rstrip("\n") + "\n"


def _numeric(rows: list[list[str]], i: int) -> bool:
    cells = [r[i] for r in rows if r[i] != "-"]
    return bool(cells) and all(c.replace(",", "").replace(".", "").replace("%", "").lstrip("+-x").isdigit()
                               for c in cells)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0;
       color: #1d1d1f; background: #fff; line-height: 1.45; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.summary { margin: 0.2em 0; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; width: 100%; font-size: 0.86em; margin: 0.6em 0 0.3em; table-layout: auto; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 4px 7px; vertical-align: top; }
th { text-align: left; background: #f5f5f7; font-weight: 600; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.text { overflow-wrap: break-word; min-width: 8em; }
td.id { overflow-wrap: break-word; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
p.caption, p.data { font-size: 0.85em; color: #555; margin-top: 0.2em; }
a { color: #0b57d0; }
"""


def page(report: Report) -> str:
    """One self-contained HTML page (figures as data: URIs, no scripts, no external resources)."""
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{e(report.title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>", "<main>",
           f"<h1>{e(report.title)}</h1>"]
    out += [f'<p class="summary">{e(line)}</p>' for line in report.summary]
    for section in report.sections:
        out.append(f"<h2>{e(section.title)}</h2>")
        out += [f"<p>{e(p)}</p>" for p in section.paragraphs]
        if section.bullets:
            out.append("<ul>" + "".join(f"<li>{e(b)}</li>" for b in section.bullets) + "</ul>")
        for figure in section.figures:
            data = base64.b64encode(figure.png).decode("ascii")
            out.append(f'<figure><img alt="{e(figure.caption)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{e(figure.caption)}</figcaption></figure>")
        for table in section.tables:
            out.append(_html_table(table))
    if report.csv_only:
        out.append("<h2>Data files</h2><ul>" + "".join(
            f'<li><a href="{e(t.name)}.csv">{e(t.name)}.csv</a>: {e(t.title)}</li>' for t in report.csv_only)
            + "</ul>")
    out += ["</main>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


def _html_table(table: Table) -> str:
    e = html.escape
    columns, rows = table.shown()
    numeric = [_numeric(rows, i) and not c.wrap for i, c in enumerate(columns)]
    head = "".join(f"<th>{e(c.header)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f'<td class="{"num" if numeric[i] else ("text" if c.wrap else "id")}">{e(cell)}</td>'
        for i, (c, cell) in enumerate(zip(columns, row))) + "</tr>" for row in rows)
    caption = f'<p class="caption">{e(table.caption)}</p>' if table.caption else ""
    return (f"<table><caption>{e(table.title)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f'</table>{caption}<p class="data">Data: <a href="{e(table.name)}.csv">{e(table.name)}.csv</a></p>')
