"""Importing measurements: resolve names through the registries' aliases, store in one transaction.

A user's import is strict: a model or hardware name that does not resolve is an error naming the
row, the field and the close matches, and nothing of the file is written. The shipped registry is
stored whole when the database is built; its rows that do not resolve keep a null id, and
``bench compare`` lists them with the reason.
"""

from __future__ import annotations

import os
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from llmeff.benchmarks.records import MeasurementRow, ParsedFile, read_measurement_file
from llmeff.errors import InvalidInputError, UnknownIdError


@dataclass(frozen=True)
class NameIndex:
    """Lower-cased ids and aliases of the model and hardware registries, to the ids they name."""

    models: dict[str, str]
    hardware: dict[str, str]
    model_aliases: dict[str, str]  # as written -> id, for suggestions
    hardware_aliases: dict[str, str]

    def model_id(self, name: str) -> str | None:
        return self.models.get(name.strip().lower())

    def hardware_id(self, name: str) -> str | None:
        return self.hardware.get(name.strip().lower())

    def require(self, row: MeasurementRow, *, where: str) -> tuple[str, str]:
        """(model id, hardware id) of a row, or an error naming the row, the field and close matches."""
        model, hardware = self.model_id(row.model), self.hardware_id(row.hardware)
        if model is None:
            miss = UnknownIdError("model", row.model, set(self.models.values()), self.model_aliases)
            raise InvalidInputError(str(miss), where=where, field="model")
        if hardware is None:
            miss = UnknownIdError("hardware", row.hardware, set(self.hardware.values()), self.hardware_aliases)
            raise InvalidInputError(str(miss), where=where, field="hardware")
        return model, hardware


def _index(models: dict[str, list[str]], hardware: dict[str, list[str]]) -> NameIndex:
    def lookup(names: dict[str, list[str]]) -> dict[str, str]:
        table = {alias.strip().lower(): rid for rid, aliases in names.items() for alias in aliases}
        table.update({rid.lower(): rid for rid in names})  # an id wins over another entry's alias
        return table

    def written(names: dict[str, list[str]]) -> dict[str, str]:
        return {alias: rid for rid, aliases in names.items() for alias in aliases}

    return NameIndex(lookup(models), lookup(hardware), written(models), written(hardware))


def index_from_connection(conn) -> NameIndex:
    def names(table: str, alias_table: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {row[0]: [] for row in conn.execute(f"SELECT id FROM {table}")}
        for display, rid in conn.execute(f"SELECT display, {table}_id FROM {alias_table}"):
            found.setdefault(rid, []).append(display)
        return found

    return _index(names("model", "modelalias"), names("hardware", "hardwarealias"))


def index_from_shipped(shipped) -> NameIndex:
    """The same index from the validated data files (the build path, before any table exists)."""
    return _index({mid: list(m.aliases) for mid, m in shipped.models.items()},
                  {hid: list(h.aliases) for hid, h in shipped.hardware.items()})


def measurement_record(row: MeasurementRow, *, number: int, file_name: str, origin: str,
                       model_id: str | None, hardware_id: str | None):
    """The table row for one parsed measurement."""
    from llmeff.benchmarks.tables import Measurement

    values = row.to_dict()
    model_name, hardware_name = values.pop("model"), values.pop("hardware")
    return Measurement(id=row.identity, origin=origin, imported_from=file_name, row_number=number,
                       model_name=model_name, hardware_name=hardware_name, model_id=model_id,
                       hardware_id=hardware_id, **values)


def shipped_records(shipped, path: Path, *, skip: set[str] = frozenset()) -> list:
    """The built-in registry's rows, resolved where the registries know the names (``skip``: ids stored)."""
    parsed = read_measurement_file(path)
    index = index_from_shipped(shipped)
    records, seen = [], set(skip)
    for number, row in enumerate(parsed.rows, start=1):
        if row.identity in seen:
            continue
        seen.add(row.identity)
        records.append(measurement_record(row, number=number, file_name=parsed.name, origin="shipped",
                                          model_id=index.model_id(row.model),
                                          hardware_id=index.hardware_id(row.hardware)))
    return records


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, with ``dry_run``, would do)."""

    file: str
    rows: int  # data rows in the file
    added: int  # new measurements
    already_stored: int  # rows whose identity the registry already holds
    repeated_in_file: int  # rows identical to an earlier row of the same file
    dry_run: bool
    measurements_before: int
    measurements_after: int


def import_measurements(path: str | os.PathLike[str], *, db: str | os.PathLike[str] | None = None,
                        dry_run: bool = False) -> ImportResult:
    """Validate and resolve every row of ``path``, then store the new ones in one transaction."""
    from llmeff import db as database

    parsed = read_measurement_file(path)
    location = database.ensure_database(db)
    with closing(database.open_read_only(location)) as conn:
        index = index_from_connection(conn)
        stored = {row[0] for row in conn.execute("SELECT id FROM measurement")}
    # a row the registry already holds is skipped before its names are checked: exporting the whole
    # registry (whose shipped rows may keep unresolved names) and importing it back adds nothing
    resolved = _resolve_all(parsed, index, skip=stored)
    new, repeated, seen = [], 0, set()
    for number, row, model_id, hardware_id in resolved:
        if row.identity in seen:
            repeated += 1
            continue
        seen.add(row.identity)
        if row.identity not in stored:
            new.append(measurement_record(row, number=number, file_name=parsed.name, origin="user",
                                          model_id=model_id, hardware_id=hardware_id))
    added = len(new)
    if new and not dry_run:
        from llmeff import backend

        with backend.write_transaction(location) as conn:  # one transaction: all rows or none
            added = len(insert_new(conn, new))
    return ImportResult(file=parsed.name, rows=len(parsed.rows), added=added, already_stored=len(seen) - added,
                        repeated_in_file=repeated, dry_run=dry_run, measurements_before=len(stored),
                        measurements_after=len(stored) + (0 if dry_run else added))


def _resolve_all(parsed: ParsedFile, index: NameIndex, *,
                 skip: set[str] = frozenset()) -> list[tuple[int, MeasurementRow, str | None, str | None]]:
    out = []
    for number, row in enumerate(parsed.rows, start=1):
        if row.identity in skip:
            out.append((number, row, None, None))
            continue
        model_id, hardware_id = index.require(row, where=f"{parsed.name} row {number}")
        out.append((number, row, model_id, hardware_id))
    return out


def insert_new(conn, records: list, *, table=None) -> set[str]:
    """Insert ``records`` (table rows) on the SQLAlchemy connection ``conn``; the ids actually added.

    A row whose identity is already stored is skipped by the database itself (INSERT ... ON CONFLICT
    DO NOTHING on the primary key), not by an earlier read: two processes importing the same file
    at once store it once, and each learns which rows it added.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    from llmeff.benchmarks.tables import Measurement

    table = table if table is not None else Measurement.__table__  # type: ignore[attr-defined]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    values = [_values(record, table) for record in records]
    statement = dialect.insert(table).on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id)
    added: set[str] = set()
    for start in range(0, len(values), 500):  # bounded statements; still one transaction
        added.update(conn.execute(statement, values[start:start + 500]).scalars().all())
    return added


def _values(record, table) -> dict:
    """A row's column values, from a table object (an import) or a result row (a copy)."""
    mapping = getattr(record, "_mapping", None)
    return {column.name: mapping[column.name] if mapping is not None else getattr(record, column.name)
            for column in table.columns}
