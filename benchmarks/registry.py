"""Reading the benchmark registry: stored measurements, filtered as ``llmeff bench list`` asks."""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass, fields

from llmeff.benchmarks.ingest import NameIndex, index_from_connection
from llmeff.benchmarks.records import METRIC_UNITS, MeasurementRow, ParsedFile
from llmeff.errors import InvalidInputError, UnknownIdError


@dataclass(frozen=True)
class StoredMeasurement:
    """A measurement with its identity and the registry ids its names resolved to (None: unresolved)."""

    id: str
    row: MeasurementRow
    model_id: str | None
    hardware_id: str | None
    origin: str = "user"


@dataclass(frozen=True)
class MeasurementFilter:
    """Every field narrows the list; model and hardware accept ids, aliases or part of a source's name."""

    model: str | None = None
    hardware: str | None = None
    metric: str | None = None
    technique: str | None = None  # part of a technique label, e.g. 'fp8' or 'tensor-parallel'
    source: str | None = None  # a source id, or its beginning
    engine: str | None = None  # part of the engine as written
    origin: str | None = None  # shipped or user


_ROW_FIELDS = tuple(f.name for f in fields(MeasurementRow))
_COLUMNS = ("id", "origin", "model_id", "hardware_id", "model_name", "hardware_name") + tuple(
    name for name in _ROW_FIELDS if name not in ("model", "hardware"))


def stored_measurements(db: str | os.PathLike[str] | None = None,
                        where: MeasurementFilter = MeasurementFilter()) -> list[StoredMeasurement]:
    """The registry's measurements matching ``where``, in a stable order (source, then file row)."""
    from llmeff import db as database

    with closing(database.connect(db)) as conn:
        index = index_from_connection(conn)
        rows = [_stored(r) for r in conn.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM measurement ORDER BY origin, source_id, imported_from, row_number")]
    return _filtered(rows, where, index)


def file_measurements(parsed: ParsedFile, index: NameIndex) -> list[StoredMeasurement]:
    """A file's rows as the registry would hold them, without storing them (names resolved leniently)."""
    return [StoredMeasurement(row.identity, row, index.model_id(row.model), index.hardware_id(row.hardware))
            for row in parsed.rows]


def _stored(record) -> StoredMeasurement:
    values = dict(zip(_COLUMNS, record))
    row = MeasurementRow(model=values["model_name"], hardware=values["hardware_name"],
                         **{name: values[name] for name in _ROW_FIELDS if name not in ("model", "hardware")})
    return StoredMeasurement(values["id"], row, values["model_id"], values["hardware_id"], values["origin"])


def _filtered(rows: list[StoredMeasurement], where: MeasurementFilter, index: NameIndex) -> list[StoredMeasurement]:
    if where.metric is not None and where.metric not in METRIC_UNITS:
        raise InvalidInputError(f"unknown metric '{where.metric}' (known: {', '.join(METRIC_UNITS)})",
                                field="metric")
    if where.origin is not None and where.origin not in ("shipped", "user"):
        raise InvalidInputError(f"must be 'shipped' or 'user', got '{where.origin}'", field="origin")
    if where.model is not None:
        rows = _by_name(rows, where.model, "model", index.model_id(where.model), index.model_aliases)
    if where.hardware is not None:
        rows = _by_name(rows, where.hardware, "hardware", index.hardware_id(where.hardware), index.hardware_aliases)
    if where.source is not None:
        sources = sorted({m.row.source_id for m in rows})
        if not any(s.startswith(where.source) for s in sources):
            raise UnknownIdError("source", where.source, sources)
        rows = [m for m in rows if m.row.source_id.startswith(where.source)]
    text_filters = (("metric", where.metric, lambda m: m.row.metric, True),
                    ("technique", where.technique, lambda m: m.row.technique, False),
                    ("engine", where.engine, lambda m: m.row.engine, False),
                    ("origin", where.origin, lambda m: m.origin, True))
    for _, wanted, value_of, exact in text_filters:
        if wanted is None:
            continue
        needle = wanted.lower()
        rows = [m for m in rows if (value := (value_of(m) or "").lower())
                and (value == needle if exact else needle in value)]
    return rows


def _by_name(rows: list[StoredMeasurement], wanted: str, kind: str, resolved: str | None,
             aliases: dict[str, str]) -> list[StoredMeasurement]:
    """Rows whose resolved id is ``wanted``'s, else whose name as written contains it; neither is an error."""
    id_of = (lambda m: m.model_id) if kind == "model" else (lambda m: m.hardware_id)
    name_of = (lambda m: m.row.model) if kind == "model" else (lambda m: m.row.hardware)
    if resolved is not None:
        return [m for m in rows if id_of(m) == resolved]
    needle = wanted.strip().lower()
    matched = [m for m in rows if needle in name_of(m).lower()]
    if not matched:
        known = {id_of(m) for m in rows if id_of(m)} | set(aliases.values())
        raise UnknownIdError(kind, wanted, known, aliases)
    return matched
