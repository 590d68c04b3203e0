"""Where the knowledge base lives, and keeping it in step with the shipped data.

The read path (every listing) opens the file with the stdlib ``sqlite3`` module: importing
SQLModel costs about 0.35 s, more than a listing may take in all. Only a build, which happens
on first use and after the shipped data changes, imports the ORM.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from llmeff.errors import DatabaseError, UnknownIdError

SCHEMA_VERSION = 4
# A digest of the tables' columns (kb/tables.py). tests/meta/test_schema_version.py recomputes it,
# so a change to the tables cannot land without a new SCHEMA_VERSION, which makes existing
# databases rebuild their shipped part instead of failing on a missing column.
SCHEMA_FINGERPRINT = "c5602b4964fc14fe"
DB_FILE_NAME = "llmeff.db"
META_TABLE = "llmeff_meta"


def database_path(db: str | os.PathLike[str] | None = None) -> Path:
    """The database file: ``--db``, else ``$LLMEFF_HOME/llmeff.db``, else the user's data directory."""
    if db is not None:
        return Path(db).expanduser()
    home = os.environ.get("LLMEFF_HOME")
    if home:
        return Path(home).expanduser() / DB_FILE_NAME
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "llmeff" / DB_FILE_NAME


@dataclass(frozen=True)
class BuildState:
    """What a database file says about itself (read without the ORM)."""

    path: Path
    exists: bool
    schema_version: int | None = None
    content_hash: str | None = None
    llmeff_version: str | None = None


def read_state(path: Path) -> BuildState:
    """Read the meta table; a file that is not an llmeff database is an error, never overwritten."""
    if not path.exists() or path.stat().st_size == 0:
        return BuildState(path=path, exists=False)
    try:
        with closing(connect_read_only(path)) as conn:
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if META_TABLE not in names:
                if names:
                    raise DatabaseError(
                        f"{path} is not an llmeff database (it has other tables and no {META_TABLE}); "
                        "choose another file with --db or LLMEFF_HOME"
                    )
                return BuildState(path=path, exists=False)
            meta = dict(conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall())
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(f"{path} is not a readable SQLite database ({exc}); move it aside or pass --db") from None
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise DatabaseError(f"{path} has no valid schema version; move it aside or pass --db") from None
    return BuildState(
        path=path,
        exists=True,
        schema_version=version,
        content_hash=meta.get("content_hash"),
        llmeff_version=meta.get("llmeff_version"),
    )


def connect_read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def ensure_database(path: Path, data_dir: Path | None = None) -> Path:
    """Build the database on first use, rebuild its shipped part when the shipped data changed."""
    from llmeff.kb.datafiles import content_hash, default_data_dir

    data_dir = data_dir or default_data_dir()
    state = read_state(path)
    if state.exists and state.schema_version is not None and state.schema_version > SCHEMA_VERSION:
        raise DatabaseError(
            f"{path} was built by a newer llmeff (schema {state.schema_version}, this one reads {SCHEMA_VERSION})"
        )
    wanted = content_hash(data_dir)
    if state.exists and state.schema_version == SCHEMA_VERSION and state.content_hash == wanted:
        return path
    build_database(path, data_dir=data_dir)
    return path


def build_database(path: Path | str, *, data_dir: Path | None = None) -> None:
    """(Re)build the shipped part of the database from ``data/`` in one transaction.

    A new file is written beside the target and renamed into place, so a failed build leaves
    nothing behind; an existing file is rebuilt in place, inside one transaction, so the rows a
    user imported survive and a failure leaves the old content.
    """
    from llmeff.kb.build import write_shipped
    from llmeff.kb.datafiles import content_hash, default_data_dir
    from llmeff.kb.load import load_valid_data

    path, data_dir = Path(path), data_dir or default_data_dir()
    shipped = load_valid_data(data_dir)
    meta = {"schema_version": str(SCHEMA_VERSION), "content_hash": content_hash(data_dir), "llmeff_version": _version()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if read_state(path).exists:
        write_shipped(path, shipped, meta)
        return
    scratch = path.with_name(f".{path.name}.{os.getpid()}.building")
    try:
        write_shipped(scratch, shipped, meta)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def _version() -> str:
    from llmeff import __version__

    return __version__


def connect(db: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """A read-only connection to an up-to-date knowledge base (built first if needed)."""
    path = ensure_database(database_path(db))
    return connect_read_only(path)


def resolve_id(conn: sqlite3.Connection, *, kind: str, table: str, alias_table: str, wanted: str) -> str:
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
