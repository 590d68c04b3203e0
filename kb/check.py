"""Cross-file consistency of the shipped data: the checks one file's schema cannot make.

Every problem names the file and the field. ``llmeff db check`` reports them all at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from llmeff.errors import InvalidInputError
from llmeff.kb.load import Problem, ShippedData
from llmeff.techniques.registry import installed_plugin_ids


def cross_check(shipped: ShippedData, *, installed_plugins: Iterable[str] | None = None) -> list[Problem]:
    installed = frozenset(installed_plugins) if installed_plugins is not None else installed_plugin_ids()
    problems: list[Problem] = []
    problems += _check_taxonomy(shipped)
    problems += _check_techniques(shipped, installed)
    problems += _check_aliases(shipped)
    problems += _check_papers(shipped)
    problems += _check_models(shipped)
    problems += _check_efficiency_classes(shipped)
    return problems


def _check_efficiency_classes(shipped: ShippedData) -> list[Problem]:
    """Every device of a class exists, and no device is in two classes."""
    if shipped.efficiency is None:
        return []
    problems, owner = [], {}
    for index, cls in enumerate(shipped.efficiency.classes):
        for position, device in enumerate(cls.devices):
            field = f"classes.{index}.devices.{position}"
            if device not in shipped.hardware and device not in shipped.invalid_ids:
                problems.append(Problem("data/efficiency.toml", field, f"unknown hardware '{device}'"))
            elif owner.setdefault(device, cls.id) != cls.id:
                problems.append(Problem("data/efficiency.toml", field, f"'{device}' is already in class '{owner[device]}'"))
    return problems


def _check_taxonomy(shipped: ShippedData) -> list[Problem]:
    if shipped.taxonomy is None:
        return []
    problems = []
    where = "data/taxonomy.toml"
    categories = {}
    for index, category in enumerate(shipped.taxonomy.categories):
        if category.id in categories:
            problems.append(Problem(where, f"categories.{index}.id", f"duplicate category id '{category.id}'"))
        categories[category.id] = category
    for index, category in enumerate(shipped.taxonomy.categories):
        parent = categories.get(category.parent) if category.parent else None
        if category.parent and parent is None:
            problems.append(Problem(where, f"categories.{index}.parent", f"unknown category '{category.parent}'"))
        elif parent is not None and parent.tree != category.tree:
            problems.append(
                Problem(where, f"categories.{index}.parent", f"'{category.parent}' belongs to the {parent.tree} tree")
            )
        seen, node = {category.id}, parent
        while node is not None and node.parent:
            if node.parent in seen:
                problems.append(Problem(where, f"categories.{index}.parent", "the parent chain loops"))
                break
            seen.add(node.parent)
            node = categories.get(node.parent)
    return problems


def _check_techniques(shipped: ShippedData, installed: frozenset[str]) -> list[Problem]:
    categories = {c.id: c for c in shipped.taxonomy.categories} if shipped.taxonomy else {}
    seeds = {s.id for s in shipped.taxonomy.seeds} if shipped.taxonomy else set()
    planned = {p.id for p in shipped.plugins.plugins} if shipped.plugins else set()
    problems = []
    for tid, technique in sorted(shipped.techniques.items()):
        file = shipped.file_of("technique", tid)

        def bad(field: str, message: str, file: str = file) -> None:
            problems.append(Problem(file, field, message))

        category = categories.get(technique.category)
        if category is None:
            bad("category", f"unknown category '{technique.category}'")
        elif category.tree != "survey":
            bad("category", f"'{technique.category}' is not in the survey tree (2404.14294)")
        if technique.unveiled_category is not None:
            unveiled = categories.get(technique.unveiled_category)
            if unveiled is None or unveiled.tree != "unveiled":
                bad("unveiled_category", f"'{technique.unveiled_category}' is not a category of the unveiled tree")
        for index, seed in enumerate(technique.seeds):
            if seed not in seeds:
                bad(f"seeds.{index}", f"unknown seed paper '{seed}'")
        for relation in ("compatible_with", "conflicts_with"):
            for index, other in enumerate(getattr(technique, relation)):
                if other == tid:
                    bad(f"{relation}.{index}", "a technique cannot relate to itself")
                elif other not in shipped.techniques and other not in shipped.invalid_ids:
                    bad(f"{relation}.{index}", f"unknown technique '{other}'")
        for index, other in enumerate(technique.conflicts_with):
            peer = shipped.techniques.get(other)
            if other in technique.compatible_with or (peer is not None and tid in peer.compatible_with):
                bad(f"conflicts_with.{index}", f"'{other}' is marked both compatible and conflicting")
        plugin = technique.cost_model.plugin
        if plugin is not None and plugin in installed and technique.cost_model.plugin_status == "planned":
            bad("cost_model.plugin_status", f"plugin '{plugin}' is installed: drop plugin_status = \"planned\"")
        if plugin is not None and plugin in installed and technique.cost_model.params:
            problems.extend(_params_problems(file, plugin, technique.cost_model.params))
        if plugin is not None and plugin not in installed:
            if technique.cost_model.plugin_status != "planned":
                bad("cost_model.plugin", f"plugin '{plugin}' is not installed (entry-point group llmeff.techniques)")
            elif plugin not in planned:
                bad("cost_model.plugin", f"plugin '{plugin}' is neither installed nor listed in data/plugins.toml")
    return problems


def _params_problems(file: str, plugin_id: str, params: dict) -> list[Problem]:
    """The entry's plugin settings must parse as that plugin's parameters."""
    from llmeff.errors import LlmeffError
    from llmeff.techniques.registry import get_plugin

    try:
        get_plugin(plugin_id).Params.parse({k: str(v) for k, v in params.items()})
    except InvalidInputError as exc:
        return [Problem(file, f"cost_model.params.{exc.field}" if exc.field else "cost_model.params", exc.detail)]
    except LlmeffError as exc:
        return [Problem(file, "cost_model.plugin", str(exc))]
    return []


def _check_aliases(shipped: ShippedData) -> list[Problem]:
    problems = []
    for kind, registry in (("technique", shipped.techniques), ("hardware", shipped.hardware), ("model", shipped.models)):
        owners: dict[str, str] = {rid.lower(): rid for rid in registry}
        for rid, record in sorted(registry.items()):
            for index, alias in enumerate(record.aliases):
                key = alias.strip().lower()
                owner = owners.setdefault(key, rid)
                if owner != rid:
                    problems.append(
                        Problem(
                            shipped.file_of(kind, rid),
                            f"aliases.{index}",
                            f"alias '{alias}' already names {kind} '{owner}'",
                        )
                    )
    return problems


def _check_papers(shipped: ShippedData) -> list[Problem]:
    """The same arXiv id must carry the same title and first author wherever it is cited."""
    problems = []
    first_seen: dict[str, tuple[str, str, str]] = {}
    for tid, technique in sorted(shipped.techniques.items()):
        for index, paper in enumerate(technique.papers):
            if paper.arxiv is None:
                continue
            known = first_seen.setdefault(paper.arxiv, (paper.title, paper.first_author, tid))
            if known[1] != paper.first_author:
                problems.append(
                    Problem(
                        shipped.file_of("technique", tid),
                        f"papers.{index}.first_author",
                        f"arXiv {paper.arxiv} has first author '{known[1]}' in technique '{known[2]}'",
                    )
                )
    return problems


def _check_models(shipped: ShippedData) -> list[Problem]:
    from llmeff.architectures import Architecture

    problems = []
    for mid, model in sorted(shipped.models.items()):
        file = shipped.file_of("model", mid)
        try:
            Architecture.from_hf_config(model.config, where=file)
        except InvalidInputError as exc:
            problems.append(Problem(file, f"config.{exc.field}" if exc.field else "config", exc.detail))
    return problems
