"""Units: llmeff computes in bytes, FLOP and seconds; this module formats them for people.

Decimal SI prefixes throughout, as datasheets print them (80 GB = 80e9 bytes, not GiB).
"""

from __future__ import annotations

_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float, unit: str, digits: int = 3) -> str:
    """``si(3.35e12, "B/s")`` -> ``'3.35 TB/s'``: three significant digits by default."""
    for scale, prefix in _PREFIXES:
        if abs(value) >= scale:
            return f"{_significant(value / scale, digits)} {prefix}{unit}"
    return f"{_significant(value, digits)} {unit}"


def _significant(value: float, digits: int) -> str:
    text = f"{value:.{digits}g}"
    if "e" in text:  # 1000 TB/s would print as 1e+03: keep it positional
        text = f"{value:.0f}"
    return text


def bytes_(value: float | None) -> str:
    return "-" if value is None else si(value, "B")


def bandwidth(value: float | None) -> str:
    return "-" if value is None else si(value, "B/s")


def flops(value: float | None) -> str:
    return "-" if value is None else si(value, "FLOP/s", digits=4)  # datasheets print 989.5, not 990


def params(value: float | None) -> str:
    """A parameter count, e.g. ``6.74B``."""
    if value is None:
        return "-"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{_significant(value / scale, 3)}{suffix}"
    return str(int(value))
