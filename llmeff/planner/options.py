"""The choices the planner combines: knowledge-base techniques, as plugin settings, with accuracy and papers."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from llmeff.errors import InvalidInputError, LlmeffError
from llmeff.hardware.capabilities import capabilities

# Rewrites that compute the same function as the baseline (first principles: they change where, when
# or how the same arithmetic runs, or verify drafts exactly), so they cost no accuracy.
EXACT_PLUGINS = frozenset({
    "fused-attention", "paged-kv", "continuous-batching", "chunked-prefill", "prefix-caching", "kernel-fusion",
    "cuda-graphs", "tensor-parallel", "pipeline-parallel", "offloading", "expert-offloading", "pd-disaggregation",
    "speculative-decoding", "npu-subgraph-scheduling",
})


UNCHECKED_SOURCES = frozenset({"third-party"})


@dataclass(frozen=True)
class Accuracy:
    """Accuracy cost of a choice: exact by construction, a loss read in a reported result, or unknown."""

    kind: str  # "exact", "known" or "unknown"
    loss_points: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class Option:
    plugin_id: str
    plugin: object
    params: object
    entries: tuple[str, ...]  # knowledge-base technique ids this choice stands for
    accuracy: Accuracy
    papers: tuple[str, ...]  # arXiv ids (or venues) of the entries

    @cached_property
    def label(self) -> str:
        settings = ",".join(f"{k}={_setting(v)}" for k, v in sorted(self.params.to_dict().items()) if v is not None)
        return f"{self.plugin_id}" + (f":{settings}" if settings else "")


def _setting(value: object) -> str:
    # six significant digits: a derived ratio such as 0.5102040816326531 reads as 0.510204
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def build_options(kb, workload, hardware, *, exclude: tuple[str, ...] = (), per_plugin: int = 4) -> list[Option]:
    """Every plugin setting worth trying on this device: the entries' own settings, then the plugin's space.

    Entries whose hardware requirements the device lacks, or which are excluded, are left out; a
    setting the plugin refuses on the plain workload is left out too.
    """
    from llmeff.techniques.registry import load_plugins

    plugins = load_plugins()
    have = capabilities(hardware)
    excluded_plugins, excluded = _excluded(kb, plugins, exclude)
    by_plugin: dict[str, list[str]] = {}
    for t in kb.techniques():
        if t.plugin in plugins and t.plugin not in excluded_plugins and t.id not in excluded \
                and set(t.requires) <= have:
            by_plugin.setdefault(t.plugin, []).append(t.id)
    options = []
    for plugin_id in sorted(by_plugin):
        plugin, entries = plugins[plugin_id], by_plugin[plugin_id]
        settings: dict[tuple, tuple[object, list[str]]] = {}
        for entry_id in entries:
            params = _entry_params(kb, plugin, entry_id)
            if params is not None:
                settings.setdefault(_key(params), (params, []))[1].append(entry_id)
        generic = [e for e in entries if not kb.technique(e).plugin_params] or entries
        for params in plugin.param_space(workload, hardware):
            settings.setdefault(_key(params), (params, list(generic)))
        kept = 0
        for key in sorted(settings, key=repr):
            params, stands_for = settings[key]
            if kept == per_plugin or not plugin.applicability(workload, hardware, params).ok:
                continue
            details = [kb.technique(e) for e in sorted(stands_for)]
            options.append(Option(plugin_id, plugin, params, tuple(sorted(stands_for)),
                                  _accuracy(plugin_id, details), _papers(details)))
            kept += 1
    return options


def _excluded(kb, plugins: dict, names: tuple[str, ...]) -> tuple[set[str], set[str]]:
    """Split --exclude names into plugins (every entry using one goes) and single knowledge-base entries."""
    aliases = {alias: p.id for p in plugins.values() for alias in getattr(p, "aliases", ())}
    plugin_ids, entry_ids = set(), set()
    for name in names:
        if name in plugins or name in aliases:
            plugin_ids.add(aliases.get(name, name))
        else:
            entry_ids.add(kb.technique(name).summary.id)
    return plugin_ids, entry_ids


def _key(params) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.to_dict().items()))


def _entry_params(kb, plugin, entry_id: str):
    settings = kb.technique(entry_id).plugin_params
    try:
        return plugin.Params.parse({k: str(v) for k, v in settings.items()})
    except (InvalidInputError, LlmeffError):
        return None  # the plugin needs settings the entry does not carry (its param_space supplies them)


def _accuracy(plugin_id: str, details) -> Accuracy:
    if plugin_id in EXACT_PLUGINS:
        return Accuracy("exact", 0.0, "computes the same function as the baseline")
    # A third-party report nobody re-checked against the paper is not evidence enough to spend an
    # accuracy budget on: such a result leaves the impact unknown.
    losses = [(-r.value, f"{d.summary.id}: {r.source}") for d in details for r in d.results
              if r.metric == "accuracy_delta" and r.value is not None and r.source_kind not in UNCHECKED_SOURCES]
    if not losses:
        return Accuracy("unknown", 0.0, "no checked accuracy result recorded for "
                        + ", ".join(d.summary.id for d in details))
    loss, source = max(losses)
    return Accuracy("known", max(loss, 0.0), source)


def _papers(details) -> tuple[str, ...]:
    return tuple(sorted({p.arxiv or p.venue or p.title for d in details for p in d.papers[:1]}))
