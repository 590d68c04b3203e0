"""Discovery of technique plugins through the ``llmeff.techniques`` entry-point group.

Built-in plugins register through the same door as third-party ones (``pyproject.toml``'s
``[project.entry-points."llmeff.techniques"]``), so this is the only place that knows which
plugins exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from llmeff.errors import PluginError, UnknownIdError

ENTRY_POINT_GROUP = "llmeff.techniques"


@lru_cache(maxsize=1)
def installed_plugin_ids() -> frozenset[str]:
    """Ids of every plugin an installed distribution registers (without importing them)."""
    return frozenset(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


@dataclass(frozen=True)
class PluginInfo:
    id: str
    distribution: str
    target: str  # module:attribute


def _distribution(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def plugin_infos() -> dict[str, PluginInfo]:
    """Every registered plugin, by id; two distributions claiming one id is an error naming both."""
    return dict(_scan_plugins())


@lru_cache(maxsize=1)  # reading every distribution's metadata costs ~0.1 s: once per process
def _scan_plugins() -> dict[str, PluginInfo]:
    found: dict[str, PluginInfo] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, _distribution(e))):
        info = PluginInfo(ep.name, _distribution(ep), ep.value)
        if ep.name in found and found[ep.name] != info:
            other = found[ep.name]
            raise PluginError(
                f"two plugins claim the technique id '{ep.name}': {other.target} (distribution {other.distribution}) "
                f"and {info.target} (distribution {info.distribution}); uninstall one of them"
            )
        found[ep.name] = info
    return found


@lru_cache(maxsize=None)
def _load(name: str, target: str):
    (ep,) = [e for e in entry_points(group=ENTRY_POINT_GROUP, name=name) if e.value == target]
    try:
        plugin = ep.load()
    except Exception as exc:  # a broken third-party module must not take the CLI down with a traceback
        raise PluginError(f"plugin '{name}' ({target}) failed to load: {type(exc).__name__}: {exc}") from None
    if getattr(plugin, "id", None) != name:
        raise PluginError(f"plugin {target} registers as '{name}' but its id is {getattr(plugin, 'id', None)!r}")
    return plugin


def load_plugins() -> dict:
    """Every registered plugin object, by id."""
    return {pid: _load(pid, info.target) for pid, info in plugin_infos().items()}


def get_plugin(plugin_id: str):
    """One plugin by id or alias; an unknown id suggests close ones."""
    infos = plugin_infos()
    if plugin_id in infos:  # import only this plugin's module, not all of them
        return _load(plugin_id, infos[plugin_id].target)
    plugins = load_plugins()
    if plugin_id in plugins:
        return plugins[plugin_id]
    aliases = {alias: p.id for p in plugins.values() for alias in getattr(p, "aliases", ())}
    if plugin_id in aliases:
        return plugins[aliases[plugin_id]]
    raise UnknownIdError("technique plugin", plugin_id, plugins, aliases)


def clear_cache() -> None:
    """Forget loaded plugins (tests that install a plugin at run time call this)."""
    _load.cache_clear()
    _scan_plugins.cache_clear()
    installed_plugin_ids.cache_clear()
