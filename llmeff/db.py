"""Where the knowledge base lives, and keeping it in step with the shipped data.

The read path (every listing) opens a SQLite file with the stdlib ``sqlite3`` module: importing
SQLModel costs about 0.35 s, more than a listing may take in all. Only a build, which happens
on first use and after the shipped data changes, imports the ORM. A PostgreSQL server
(``llmeff.backend``) is read through the same queries, over SQLAlchemy bound parameters.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from llmeff import backend
from llmeff.backend import Location
from llmeff.errors import DatabaseError, UnknownIdError

SCHEMA_VERSION = 5
# A digest of the tables' columns (kb/tables.py). tests/meta/test_schema_version.py recomputes it,
# so a change to the tables cannot land without a new SCHEMA_VERSION, which makes existing
# databases rebuild their shipped part instead of failing on a missing column.
# v5: 64-bit byte and parameter counts (hardware, model), which PostgreSQL needs. The tables a user
# fills (measurement, calibration) are unchanged, so a v4 database upgrades by rebuilding its
# shipped part in place, keeping their rows.
SCHEMA_FINGERPRINT = "a2c4b05e680d025b"
DB_FILE_NAME = backend.DB_FILE_NAME
META_TABLE = "llmeff_meta"
BUILD_LOCK = "llmeff: build the shipped data"


def database_path(db: str | os.PathLike[str] | None = None) -> Path:
    """The SQLite file: ``--db``, else ``$LLMEFF_HOME/llmeff.db``, else the user's data directory."""
    return Path(db).expanduser() if db is not None else backend.default_file().path  # type: ignore[return-value]


@dataclass(frozen=True)
class BuildState:
    """What a database says about itself (read without the ORM)."""

    path: str  # the file, or the server's URL with its password masked
    exists: bool
    schema_version: int | None = None
    content_hash: str | None = None
    llmeff_version: str | None = None
    backend: str = "sqlite"


def read_state(where: Path | Location) -> BuildState:
    """Read the meta table; a database that is not an llmeff database is an error, never overwritten."""
    location = where if isinstance(where, Location) else Location("sqlite", path=Path(where))
    if location.is_sqlite:
        path = location.path
        if not path.exists() or path.stat().st_size == 0:
            return BuildState(path=str(path), exists=False)
        try:
            with closing(connect_read_only(path)) as conn:
                meta = _meta(conn, location)
        except sqlite3.DatabaseError as exc:
            if backend.is_busy(str(exc)):
                raise backend.busy_error(location) from None
            raise DatabaseError(f"{path} is not a readable SQLite database ({exc}); move it aside or pass --db") from None
    else:
        with closing(backend.ServerConnection(location)) as conn:
            meta = _meta(conn, location)
    return _state(location, meta)


def _meta(conn, location: Location) -> dict[str, str] | None:
    names = backend.table_names(conn)
    if META_TABLE not in names:
        if names:
            raise DatabaseError(
                f"{location.display()} is not an llmeff database (it has other tables and no {META_TABLE}); "
                "choose another one with --db, --db-url, LLMEFF_HOME or LLMEFF_DATABASE_URL"
            )
        return None
    return dict(conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())


def _state(location: Location, meta: dict[str, str] | None) -> BuildState:
    if meta is None:
        return BuildState(path=location.display(), exists=False, backend=location.backend)
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise DatabaseError(f"{location.display()} has no valid schema version; move it aside or pass --db") from None
    return BuildState(path=location.display(), exists=True, schema_version=version,
                      content_hash=meta.get("content_hash"), llmeff_version=meta.get("llmeff_version"),
                      backend=location.backend)


def connect_read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=backend.SQLITE_BUSY_TIMEOUT_S)
    conn.row_factory = sqlite3.Row
    return conn


def open_read_only(location: Location):
    """A read connection: stdlib sqlite3 for a file, the SQLAlchemy adapter for a server."""
    return connect_read_only(location.path) if location.is_sqlite else backend.ServerConnection(location)


def ensure_database(where: str | os.PathLike[str] | Location | None, data_dir: Path | None = None) -> Location:
    """Build the database on first use, rebuild its shipped part when the shipped data changed."""
    from llmeff.kb.datafiles import content_hash, default_data_dir

    location = backend.locate(where)
    data_dir = data_dir or default_data_dir()
    wanted = content_hash(data_dir)
    if not _stale(read_state(location), location, wanted):
        return location
    build_database(location, data_dir=data_dir, only_if_stale=True)
    return location


def _stale(state: BuildState, location: Location, wanted: str) -> bool:
    if state.exists and state.schema_version is not None and state.schema_version > SCHEMA_VERSION:
        raise DatabaseError(f"{location.display()} was built by a newer llmeff "
                            f"(schema {state.schema_version}, this one reads {SCHEMA_VERSION})")
    return not (state.exists and state.schema_version == SCHEMA_VERSION and state.content_hash == wanted)


def build_database(where: str | os.PathLike[str] | Location | None, *, data_dir: Path | None = None,
                   only_if_stale: bool = False) -> Location:
    """(Re)build the shipped part of the database from ``data/`` in one transaction.

    A new SQLite file is written beside the target and renamed into place, so a failed build leaves
    nothing behind; an existing database is rebuilt in place, inside one transaction, so the rows a
    user imported survive and a failure leaves the old content. On a server the build holds an
    advisory lock, so two processes starting at once build it once (``only_if_stale``: the second
    finds it built and does nothing).
    """
    from llmeff.kb.build import write_shipped
    from llmeff.kb.datafiles import content_hash, default_data_dir
    from llmeff.kb.load import load_valid_data

    location = backend.locate(where)
    data_dir = data_dir or default_data_dir()
    shipped = load_valid_data(data_dir)
    wanted = content_hash(data_dir)
    meta = {"schema_version": str(SCHEMA_VERSION), "content_hash": wanted, "llmeff_version": _version()}
    if not location.is_sqlite:
        with backend.write_transaction(location, lock=BUILD_LOCK) as conn:
            if only_if_stale and not _stale(_state(location, _meta_in(conn)), location, wanted):
                return location  # another process built it while this one waited for the lock
            write_shipped(conn, shipped, meta)
        return location
    path = location.path
    path.parent.mkdir(parents=True, exist_ok=True)
    if read_state(location).exists:
        with backend.write_transaction(location) as conn:
            write_shipped(conn, shipped, meta)
        _use_wal(path)
        return location
    scratch = path.with_name(f".{path.name}.{os.getpid()}.building")
    try:
        with backend.write_transaction(Location("sqlite", path=scratch)) as conn:
            write_shipped(conn, shipped, meta)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    _use_wal(path)
    return location


def _meta_in(conn) -> dict[str, str] | None:
    """The meta table read on a SQLAlchemy connection (inside the build's transaction)."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table(META_TABLE):
        return None
    return {key: value for key, value in conn.execute(text(f"SELECT key, value FROM {META_TABLE}"))}


def _use_wal(path: Path) -> None:
    """Write-ahead logging: readers never block the one writer, and a killed writer leaves no torn file."""
    with closing(sqlite3.connect(path, timeout=backend.SQLITE_BUSY_TIMEOUT_S)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")


def _version() -> str:
    from llmeff import __version__

    return __version__


def connect(db: str | os.PathLike[str] | Location | None = None):
    """A read-only connection to an up-to-date knowledge base (built first if needed)."""
    return open_read_only(ensure_database(db))


def resolve_id(conn, *, kind: str, table: str, alias_table: str, wanted: str) -> str:
    """The id of a row of ``table`` named by its id or any alias (case-insensitive).

    Alias tables store the lower-cased alias in ``alias``, the row id in their second column and
    the alias as written in ``display``. A miss raises UnknownIdError with close matches.
    """
    key = wanted.strip().lower()
    target = f"{table}_id"
    row = conn.execute(f"SELECT id FROM {table} WHERE lower(id) = ?", (key,)).fetchone()
    if row is None:
        row = conn.execute(f"SELECT {target} FROM {alias_table} WHERE alias = ?", (key,)).fetchone()
    if row is not None:
        return row[0]
    known = [r[0] for r in conn.execute(f"SELECT id FROM {table}")]
    aliases = dict(conn.execute(f"SELECT display, {target} FROM {alias_table}").fetchall())
    raise UnknownIdError(kind, wanted, known, aliases)
