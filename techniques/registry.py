"""Discovery of technique plugins through the ``llmeff.techniques`` entry-point group.

Built-in plugins register through the same door as third-party ones, so this is the only
place that knows which plugins exist.
"""

from __future__ import annotations

from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "llmeff.techniques"


def installed_plugin_ids() -> frozenset[str]:
    """Ids of every plugin an installed distribution registers (without importing them)."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
