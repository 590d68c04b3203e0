"""``llmeff models``: the model-architecture registry, and any config.json."""

from __future__ import annotations

from pathlib import Path

import typer

from llmeff import units
from llmeff.cli import render
from llmeff.cli.options import JSON, db_path

app = typer.Typer(help="Browse model architectures, or read a Hugging Face config.json.", no_args_is_help=True)


def _kb(ctx: typer.Context):
    from llmeff.kb.api import open_kb

    return open_kb(db_path(ctx))


def _delta(computed: int, published_b: float | None) -> str | None:
    if published_b is None:
        return None
    return f"{published_b:g}B ({(computed / (published_b * 1e9) - 1) * 100:+.1f}% computed vs published)"


def _compact(value: object) -> object:
    """Long per-layer index lists (MoE layers, sliding-window layers) as a count and a range."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items() if v not in (None, (), [], {}))
    if isinstance(value, list) and len(value) > 8:
        return f"{len(value)} layers ({value[0]}..{value[-1]})"
    return value


@app.command("list")
def list_(ctx: typer.Context, family: str = typer.Option(None, help="e.g. llama-2, qwen2.5, mixtral."), json: bool = JSON) -> None:
    """List model architectures with parameter counts computed from their configs.

    Example: llmeff models list --family llama-3.1
    """
    with _kb(ctx) as kb:
        records = kb.models(family=family)
    if json:
        render.emit_json(records)
        return
    rows = []
    for m in records:
        c = m.architecture()
        rows.append(
            (
                m.id,
                m.model_type,
                units.params(m.params_total),
                units.params(m.params_active) if m.params_active != m.params_total else "",
                c.num_layers,
                c.hidden_size,
                f"{c.num_attention_heads}/{c.kv_heads}",
                f"{m.published_params_b:g}B" if m.published_params_b else "-",
            )
        )
    render.table(
        f"{len(records)} models",
        ["id", "type", "params", "active", "layers", "hidden", "heads q/kv", "published"],
        rows,
    )


@app.command()
def show(
    ctx: typer.Context,
    model_id: str = typer.Argument(None, help="Id or alias, e.g. 'Llama 2 7B'."),
    config: Path = typer.Option(None, "--config", help="Read this Hugging Face config.json instead of the registry."),
    json: bool = JSON,
) -> None:
    """Show one architecture and its parameter count (from the registry or a config.json).

    Example: llmeff models show llama-2-7b   |   llmeff models show --config ./config.json
    """
    from llmeff.architectures import count_parameters, load_config_file
    from llmeff.errors import InvalidInputError

    if (model_id is None) == (config is None):
        raise InvalidInputError("give a model id or --config PATH (one of the two)")
    if config is not None:
        arch, record = load_config_file(config), None
    else:
        with _kb(ctx) as kb:
            record = kb.model(model_id)
        arch = record.architecture()
    count = count_parameters(arch)
    if json:
        render.emit_json({"record": record, "architecture": arch.to_dict(), "parameters": count.to_dict()})
        return
    title = f"{record.name} [{record.id}]" if record else str(config)
    pairs = [
        ("parameters", f"{units.params(count.total)} ({count.total:,})"),
        ("active per token", f"{units.params(count.active)} ({count.active:,})" if count.active != count.total else None),
    ]
    if record is not None:
        pairs += [
            ("published", _delta(count.total, record.published_params_b)),
            ("published active", _delta(count.active, record.published_active_params_b)),
            ("published source", record.published_params_source),
            ("aliases", ", ".join(record.aliases)),
            ("Hugging Face repo", record.hf_repo_id),
        ]
    pairs += [(key, _compact(value)) for key, value in sorted(arch.to_dict().items()) if value not in (None, (), [], {})]
    if record is not None:
        pairs += [("notes", record.notes), ("data file", record.source_file)]
    render.fields(title, pairs)
    if record is not None:
        render.bullet_list("Sources", record.sources)
        render.bullet_list("Unverified", record.unverified)
