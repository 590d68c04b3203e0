"""Model-architecture registry queries: records by id or by any name a source uses."""

from __future__ import annotations

import json

from llmeff.db import resolve_id
from llmeff.kb.records import ModelRecord


def resolve_model_id(conn, wanted: str) -> str:
    return resolve_id(conn, kind="model", table="model", alias_table="modelalias", wanted=wanted)


def model_records(conn, ids: list[str] | None = None) -> list[ModelRecord]:
    aliases: dict[str, list[str]] = {}
    for row in conn.execute("SELECT model_id, display FROM modelalias ORDER BY display"):
        aliases.setdefault(row[0], []).append(row[1])
    records = []
    for row in conn.execute("SELECT * FROM model ORDER BY family, params_total, id"):
        if ids is not None and row["id"] not in ids:
            continue
        records.append(
            ModelRecord(
                id=row["id"],
                name=row["name"],
                family=row["family"],
                hf_repo_id=row["hf_repo_id"],
                model_type=row["model_type"],
                params_total=row["params_total"],
                params_active=row["params_active"],
                published_params_b=row["published_params_b"],
                published_active_params_b=row["published_active_params_b"],
                published_params_source=row["published_params_source"],
                aliases=tuple(aliases.get(row["id"], [])),
                config=json.loads(row["config"]),
                sources=tuple(json.loads(row["sources"])),
                unverified=tuple(json.loads(row["unverified"])),
                derived=tuple(json.loads(row["derived"])),
                notes=row["notes"],
                source_file=row["source_file"],
            )
        )
    return records


def model_record(conn, wanted: str) -> ModelRecord:
    return model_records(conn, [resolve_model_id(conn, wanted)])[0]
