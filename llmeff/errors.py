"""The one error hierarchy of llmeff.

The library raises these and never prints or exits; ``llmeff.cli.app`` is the only place
that turns them into ``Error: <message>`` on stderr and exit code 1.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


class LlmeffError(Exception):
    """Base class of every error llmeff reports to a user."""


class UnknownIdError(LlmeffError):
    """An id (model, hardware, technique, category, ...) that is not in the registry."""

    def __init__(self, kind: str, wanted: str, known: Iterable[str], aliases: Mapping[str, str] | None = None):
        self.kind = kind
        self.wanted = wanted
        self.suggestions = suggest(wanted, known, aliases)
        message = f"unknown {kind} '{wanted}'."
        if self.suggestions:
            message += " Did you mean: " + ", ".join(self.suggestions) + "?"
        else:
            command = _LIST_COMMANDS.get(kind)
            message += f" See 'llmeff {command} list' for the known ids." if command else ""
        super().__init__(message)


_LIST_COMMANDS = {"hardware": "hardware", "model": "models", "technique": "techniques"}


class InvalidInputError(LlmeffError):
    """Input that cannot be used: names the file, row or field at fault."""

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None):
        self.detail = message
        self.where = where
        self.field = field
        parts = [p for p in (where, f"field '{field}'" if field else None) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)


class DataError(InvalidInputError):
    """A shipped or user-added data file that breaks the knowledge-base schema."""


class DatabaseError(LlmeffError):
    """A database file that is corrupt, foreign, or from an incompatible llmeff."""


def suggest(wanted: str, known: Iterable[str], aliases: Mapping[str, str] | None = None, limit: int = 3) -> list[str]:
    """Close matches for a mistyped id, as ids: names that start with it, then contain it, then fuzzy.

    ``aliases`` maps other names (e.g. 'A100 80GB') to the id they stand for, so a near miss on
    an alias suggests the id.
    """
    names = {k.lower(): k for k in sorted(set(known))}
    for alias, target in sorted((aliases or {}).items()):
        names.setdefault(alias.lower(), target)
    picks: list[str] = []
    needle = wanted.lower().strip()
    starts = [name for name in names if needle and name.startswith(needle)]
    contained = [name for name in names if needle and needle in name]
    close = difflib.get_close_matches(needle, list(names), n=limit * 3, cutoff=0.6)
    for name in starts + contained + close:
        target = names[name]
        if target not in picks:
            picks.append(target)
        if len(picks) == limit:
            break
    return picks


class TechniqueNotApplicableError(LlmeffError):
    """A technique cannot apply to this workload on this device; the message says why."""


class PluginError(LlmeffError):
    """A technique plugin that cannot be loaded, or two plugins claiming one id."""
