"""The one error hierarchy of llmeff.

The library raises these and never prints or exits; ``llmeff.cli.app`` is the only place
that turns them into ``Error: <message>`` on stderr and exit code 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LlmeffError(Exception):
    """Base class of every error llmeff reports to a user."""


class UnknownIdError(LlmeffError):
    """An id (model, hardware, technique, category, ...) that is not in the registry."""

    def __init__(self, kind: str, wanted: str, known: Iterable[str]):
        self.kind = kind
        self.wanted = wanted
        self.suggestions = suggest(wanted, known)
        message = f"unknown {kind} '{wanted}'."
        if self.suggestions:
            message += " Did you mean: " + ", ".join(self.suggestions) + "?"
        else:
            message += f" See 'llmeff {kind} list' for the known ids." if kind in _LISTABLE else ""
        super().__init__(message)


_LISTABLE = {"hardware", "models", "techniques"}


class InvalidInputError(LlmeffError):
    """Input that cannot be used: names the file, row or field at fault."""

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None):
        self.where = where
        self.field = field
        parts = [p for p in (where, f"field '{field}'" if field else None) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)


class DataError(InvalidInputError):
    """A shipped or user-added data file that breaks the knowledge-base schema."""


class DatabaseError(LlmeffError):
    """A database file that is corrupt, foreign, or from an incompatible llmeff."""


def suggest(wanted: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Close matches for a mistyped id: fuzzy matches first, then ids containing it."""
    known = sorted(set(known))
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(wanted.lower(), list(lowered), n=limit, cutoff=0.6)
    picks = [lowered[c] for c in close]
    needle = wanted.lower()
    for k in known:
        if len(picks) >= limit:
            break
        if needle and needle in k.lower() and k not in picks:
            picks.append(k)
    return picks
