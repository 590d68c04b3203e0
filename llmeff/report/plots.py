"""The report's figures, drawn reproducibly: Agg canvas, matplotlib's default style plus fixed
settings (a user's matplotlibrc cannot leak in), PNGs without the Software/date metadata.

Every function takes plain numbers and returns PNG bytes; none reads the database. This is the
only module of llmeff that imports matplotlib, and only when a report is built.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

RC = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": 110,
    "figure.dpi": 110,
    "svg.hashsalt": "llmeff",  # SVG ids would otherwise be random
    "path.simplify": True,
    "axes.axisbelow": True,
}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
KIND_COLORS = {"gemm": "#1f77b4", "attention": "#d62728", "elementwise": "#2ca02c", "norm": "#9467bd",
               "memory": "#8c564b", "communication": "#ff7f0e"}
PHASE_MARKERS = {"prefill": "o", "decode": "^"}
DECADES_FOR_LOG = 1.5  # a value axis spanning more than ~30x goes logarithmic


def _figure(width: float, height: float, *, constrained: bool = True):
    from matplotlib.figure import Figure

    # a Figure on an Agg canvas, not pyplot: no global state, no GUI backend, nothing kept between reports
    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


def _styled(draw) -> bytes:
    """Run ``draw`` (which builds a figure) under the fixed style, and return its PNG bytes."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.style import context

    with context("default"), matplotlib.rc_context(RC):
        fig = draw()
        FigureCanvasAgg(fig)
        out = io.BytesIO()
        fig.savefig(out, format="png", metadata={"Software": None})  # no version or date chunk
    return out.getvalue()


def _log_axis(ax, which: str) -> None:
    """A log axis with labelled decades only: minor ticks cost a lot of drawing time and add clutter."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=8))
    axis.set_minor_locator(NullLocator())
    axis.set_major_formatter(FuncFormatter(_tick_label))


def _decade_axis(ax, which: str) -> None:
    from matplotlib.ticker import LogLocator, NullLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, numticks=12))
    axis.set_minor_locator(NullLocator())


def _tick_label(value: float, _position) -> str:
    if value >= 1e6 or value < 1e-2:
        exponent = math.floor(math.log10(value))
        mantissa = value / 10 ** exponent
        return f"$10^{{{exponent}}}$" if round(mantissa, 6) == 1 else f"${mantissa:g}\\times10^{{{exponent}}}$"
    return f"{value:,g}"


def _kind_color(kind: str) -> str:
    return KIND_COLORS.get(kind, "#7f7f7f")


def _spans_decades(values: Sequence[float]) -> bool:
    positive = [v for v in values if v and v > 0 and math.isfinite(v)]
    return len(positive) > 1 and math.log10(max(positive) / min(positive)) > DECADES_FOR_LOG


def roofline(title: str, roofs: Sequence[tuple[str, float, float]], panels: Sequence[tuple[str, Sequence]]) -> bytes:
    """One panel per combination: the roofs ``(dtype, peak FLOP/s, bytes/s)`` and every operator as a
    point ``(phase, kind, name, FLOP/byte, attained FLOP/s)``, so the memory-bound ones sit on the slope."""
    from matplotlib.lines import Line2D

    intensities = [p[3] for _, points in panels for p in points] or [1.0]
    rates = [p[4] for _, points in panels for p in points] or [1.0]
    ridges = [peak / bw for _, peak, bw in roofs]
    x_low = 10 ** math.floor(math.log10(min(intensities + ridges) / 2))
    x_high = 10 ** math.ceil(math.log10(max(intensities + ridges) * 2))
    y_high = 10 ** math.ceil(math.log10(max(rates + [peak for _, peak, _ in roofs]) * 1.5))
    y_low = 10 ** math.floor(math.log10(max(min(rates), y_high * 1e-6)))
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)

    legend_rows = math.ceil((len(roofs) + 2 + len({p[1] for _, points in panels for p in points})) / 4)
    width, height = 4.0 * columns + 0.4, 3.0 * rows + 0.75 + 0.2 * legend_rows

    def draw():
        # fixed margins (in inches) instead of constrained layout: the grid of log axes is the slowest
        # figure to lay out, and its labels have a known size
        fig = _figure(width, height, constrained=False)
        axes = fig.subplots(rows, columns, squeeze=False, sharex=True, sharey=True, gridspec_kw=dict(
            left=0.8 / width, right=1 - 0.15 / width, top=1 - 0.55 / height,
            bottom=(0.6 + 0.2 * legend_rows) / height, wspace=0.1, hspace=0.32 * 3.0 / (3.0 * rows)))
        for index, ax in enumerate(axes.flat):
            if index >= len(panels):
                ax.set_visible(False)
                continue
            label, points = panels[index]
            xs = [x_low, x_high]
            for i, (dtype, peak, bandwidth) in enumerate(roofs):
                ridge = peak / bandwidth
                ax.plot([x_low, ridge, x_high], [x_low * bandwidth, peak, peak], color="black",
                        linestyle=("-", "--", ":", "-.")[i % 4], linewidth=1.2)
            for phase in ("prefill", "decode"):
                for kind in sorted({p[1] for p in points if p[0] == phase}):
                    chosen = [p for p in points if p[0] == phase and p[1] == kind]
                    ax.scatter([p[3] for p in chosen], [p[4] for p in chosen], marker=PHASE_MARKERS[phase],
                               color=_kind_color(kind), s=26, alpha=0.85, edgecolors="white", linewidths=0.4,
                               zorder=3)
            _decade_axis(ax, "x")
            _decade_axis(ax, "y")
            ax.set_xlim(*xs)
            ax.set_ylim(y_low, y_high)
            ax.set_title(label)
            if index % columns == 0:
                ax.set_ylabel("attained FLOP/s (predicted)")
            if index // columns == rows - 1 or index + columns >= len(panels):
                ax.set_xlabel("arithmetic intensity (FLOP/byte)")
        kinds = sorted({p[1] for _, points in panels for p in points})
        handles = [Line2D([], [], color="black", linestyle=("-", "--", ":", "-.")[i % 4],
                          label=f"{dtype} roof: {peak / 1e12:.4g} TFLOP/s, {bandwidth / 1e9:,.0f} GB/s, "
                                f"ridge {peak / bandwidth:.0f} FLOP/B")
                   for i, (dtype, peak, bandwidth) in enumerate(roofs)]
        handles += [Line2D([], [], marker=PHASE_MARKERS[ph], linestyle="", color="#444444", label=ph)
                    for ph in ("prefill", "decode")]
        handles += [Line2D([], [], marker="s", linestyle="", color=_kind_color(k), label=k) for k in kinds]
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), 4),
                   frameon=False)
        fig.suptitle(title, y=1 - 0.08 / height, va="top")
        return fig

    return _styled(draw)


def breakdown(title: str, labels: Sequence[str], phases: Sequence[tuple[str, str, Sequence[dict[str, float]]]]) -> bytes:
    """Stacked horizontal bars of time by operator class: one panel per phase ``(name, unit, per-label dicts)``."""
    from matplotlib.patches import Patch

    kinds = sorted({k for _, _, rows in phases for row in rows for k in row})

    def draw():
        fig = _figure(9.0, 0.42 * len(labels) + 1.9)
        axes = fig.subplots(1, len(phases), squeeze=False, sharey=True)[0]
        positions = list(range(len(labels)))[::-1]  # the first combination (baseline) on top
        for ax, (name, unit, rows) in zip(axes, phases):
            left = [0.0] * len(labels)
            for kind in kinds:
                widths = [row.get(kind, 0.0) for row in rows]
                ax.barh(positions, widths, left=left, color=_kind_color(kind), height=0.65)
                left = [a + b for a, b in zip(left, widths)]
            for y, total in zip(positions, left):
                ax.text(total, y, f" {total:.3g}", va="center", fontsize=8)
            ax.set_xlim(0, max(left + [1e-9]) * 1.18)
            ax.set_title(name)
            ax.set_xlabel(unit)
            ax.grid(axis="y", visible=False)
        axes[0].set_yticks(positions, labels)
        fig.legend(handles=[Patch(color=_kind_color(k), label=k) for k in kinds], loc="outside lower center",
                   ncol=len(kinds), frameon=False)
        fig.suptitle(title)
        return fig

    return _styled(draw)


def grouped_bars(title: str, groups: Sequence[str], series: Sequence[str],
                 panels: Sequence[tuple[str, Sequence[Sequence[float | None]]]]) -> bytes:
    """Per panel ``(axis label, values[series][group])``: bars per group, one colour per series.

    A missing value (a combination that cannot run there) leaves a gap marked 'n/a'.
    """
    from matplotlib.patches import Patch

    columns = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / columns)
    width = 0.8 / max(len(series), 1)

    def draw():
        fig = _figure(5.2 * columns, 3.0 * rows + 0.3 + 0.12 * max(len(g) for g in groups))
        axes = fig.subplots(rows, columns, squeeze=False)
        for index, ax in enumerate(axes.flat):
            if index >= len(panels):
                ax.set_visible(False)
                continue
            label, values = panels[index]
            flat = [v for per in values for v in per if v is not None]
            log = _spans_decades(flat)
            missing = []
            for s, per in enumerate(values):
                xs = [g + (s - (len(series) - 1) / 2) * width for g in range(len(groups))]
                present = [(x, v) for x, v in zip(xs, per) if v is not None]
                missing += [x for x, v in zip(xs, per) if v is None]
                ax.bar([x for x, _ in present], [v for _, v in present], width=width * 0.92,
                       color=PALETTE[s % len(PALETTE)])
            if log:
                _log_axis(ax, "y")
            for x in missing:  # a combination that cannot run on that device
                ax.text(x, 0.02, "n/a", ha="center", va="bottom", fontsize=7, rotation=90,
                        transform=ax.get_xaxis_transform())
            ax.set_ylabel(label + (" (log scale)" if log else ""))
            ax.set_xticks(range(len(groups)), groups, rotation=25, ha="right")
            ax.grid(axis="x", visible=False)
        fig.legend(handles=[Patch(color=PALETTE[i % len(PALETTE)], label=s) for i, s in enumerate(series)],
                   loc="outside lower center", ncol=min(len(series), 4), frameon=False)
        fig.suptitle(title)
        return fig

    return _styled(draw)


def memory(title: str, labels: Sequence[str], parts: Sequence[tuple[str, Sequence[float]]],
           capacities: Sequence[float | None]) -> bytes:
    """Stacked bars of resident memory (GB) per label, with each device's capacity marked on its bar."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    colors = ("#1f77b4", "#ff7f0e", "#2ca02c")

    def draw():
        fig = _figure(8.5, 0.38 * len(labels) + 1.7)
        ax = fig.subplots()
        positions = list(range(len(labels)))[::-1]
        left = [0.0] * len(labels)
        for (name, values), color in zip(parts, colors):
            ax.barh(positions, values, left=left, color=color, height=0.62)
            left = [a + b for a, b in zip(left, values)]
        for y, capacity in zip(positions, capacities):
            if capacity is not None:
                ax.plot([capacity, capacity], [y - 0.42, y + 0.42], color="black", linewidth=2.0)
        top = max(left + [c for c in capacities if c is not None] + [1e-9])
        for y, total, capacity in zip(positions, left, capacities):
            note = "" if capacity is None else (f" ({total / capacity:.0%} of capacity)" if total <= capacity
                                                 else " (does not fit)")
            # after the bar or the capacity mark, whichever ends later, so the mark never covers the text
            ax.text(max(total, capacity or 0.0), y, f" {total:.1f}{note}", va="center", fontsize=7.5)
        ax.set_xlim(0, top * 1.32)
        ax.set_yticks(positions, labels)
        ax.set_xlabel("device memory (GB, 10^9 bytes)")
        ax.grid(axis="y", visible=False)
        handles = [Patch(color=c, label=name) for (name, _), c in zip(parts, colors)]
        handles.append(Line2D([], [], color="black", linewidth=2.0, label="capacity"))
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)
        fig.suptitle(title)
        return fig

    return _styled(draw)


def predicted_vs_measured(title: str, panels: Sequence[tuple[str, Sequence[tuple[str, float, float, tuple | None]]]],
                          band_note: str) -> bytes:
    """One log-log panel per metric: each row's measured vs predicted value, coloured by device, the
    line of perfect agreement, and the 80% band of predicted / measured (a strip along it)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    devices = sorted({p[0] for _, points in panels for p in points})
    colors = {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(devices)}
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)

    def draw():
        fig = _figure(3.9 * columns, 3.4 * rows + 0.9)
        axes = fig.subplots(rows, columns, squeeze=False)
        for index, ax in enumerate(axes.flat):
            if index >= len(panels):
                ax.set_visible(False)
                continue
            label, points = panels[index]
            values = [v for p in points for v in (p[1], p[2]) + tuple(p[3] or ())]
            low, high = min(values) / 1.5, max(values) * 1.5
            ax.plot([low, high], [low, high], color="black", linewidth=0.9)
            banded = [p for p in points if p[3] is not None]
            if banded:
                # the band bounds the measured value around a prediction, so it is a constant ratio
                # predicted / measured: a strip along the diagonal, where 80% of the points should lie
                _, _, predicted, (band_low, band_high) = banded[0]
                ratio_low, ratio_high = predicted / band_high, predicted / band_low
                ax.fill_between([low, high], [low * ratio_low, high * ratio_low],
                                [low * ratio_high, high * ratio_high], color="#999999", alpha=0.22, linewidth=0)
            else:
                ax.text(0.04, 0.96, "no band: fewer than 5 rows", transform=ax.transAxes, va="top", fontsize=7.5,
                        color="#555555")
            for device in devices:
                mine = [p for p in points if p[0] == device]
                if mine:
                    ax.scatter([p[1] for p in mine], [p[2] for p in mine], color=colors[device], s=22, zorder=3)
            _log_axis(ax, "x")
            _log_axis(ax, "y")
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
            ax.set_title(label)
            ax.set_xlabel("measured")
            ax.set_ylabel("predicted")
        handles = [Line2D([], [], marker="o", linestyle="", color=colors[d], label=d) for d in devices]
        handles.append(Line2D([], [], color="black", linewidth=0.9, label="predicted = measured"))
        handles.append(Patch(color="#999999", alpha=0.35, label=f"80% band ({band_note})"))
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 3), frameon=False)
        fig.suptitle(title)
        return fig

    return _styled(draw)


def pareto(title: str, points: Sequence[tuple[str, float, float, int | None, bool]], x_label: str,
           y_label: str) -> bytes:
    """Candidates ``(annotation, x, y, place on the front or None, recommended)``: the front joined in its
    order (as numbered in its table), the recommendation ringed."""
    from matplotlib.lines import Line2D

    def draw():
        fig = _figure(7.0, 4.4)
        ax = fig.subplots()
        rest = [p for p in points if p[3] is None]
        front = sorted((p for p in points if p[3] is not None), key=lambda p: p[3])
        ax.scatter([p[1] for p in rest], [p[2] for p in rest], color="#9e9e9e", s=20)
        ax.plot([p[1] for p in front], [p[2] for p in front], color=PALETTE[0], marker="o", markersize=5)
        for p in front:
            ax.annotate(p[0], (p[1], p[2]), textcoords="offset points", xytext=(6, -3), fontsize=7.5)
        for p in points:
            if p[4]:
                ax.scatter([p[1]], [p[2]], s=140, facecolors="none", edgecolors=PALETTE[3], linewidths=1.6, zorder=4)
        if _spans_decades([p[2] for p in points]):
            _log_axis(ax, "y")
        else:
            ax.set_ylim(bottom=0)  # speed starts at zero here as in the bars: a 1% gap must look like 1%
        ax.set_xlim(left=-0.03 * (max([p[1] for p in points] + [0.0]) or 1.0),
                    right=max([p[1] for p in points] + [0.0]) * 1.25 or 1.0)
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        handles = [Line2D([], [], marker="o", linestyle="", color="#9e9e9e", label="other plans shown"),
                   Line2D([], [], marker="o", color=PALETTE[0], label="Pareto front, in its table's order"),
                   Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor=PALETTE[3],
                          markersize=10, label="recommendation")]
        fig.legend(handles=handles, loc="outside lower center", ncol=3, frameon=False)
        fig.suptitle(title)
        return fig

    return _styled(draw)
