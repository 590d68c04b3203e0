"""Which database a command uses, and how to reach it: an embedded SQLite file or a PostgreSQL server.

``--db-url`` (or ``LLMEFF_DATABASE_URL``) names a server; ``--db`` (or ``LLMEFF_HOME``) a file. SQLite
keeps its stdlib read path (no SQLAlchemy import on a listing); PostgreSQL reads go through a thin
adapter over SQLAlchemy ``text()`` with bound parameters, so the read queries are written once, with
``?`` placeholders, for both. Writes use SQLAlchemy engines on both backends.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from llmeff.errors import DatabaseError, InvalidInputError

DB_FILE_NAME = "llmeff.db"
URL_VARIABLE = "LLMEFF_DATABASE_URL"
POSTGRES_EXTRA = "pip install 'llmeff[postgres]'"
# A writer waits this long for another writer's transaction before giving up with "database is busy".
SQLITE_BUSY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Location:
    """Where the database is: ``path`` for SQLite, ``url`` (with its password) for PostgreSQL."""

    backend: str  # "sqlite" or "postgresql"
    path: Path | None = None
    url: str | None = field(default=None, repr=False)  # never in a repr, a traceback or a log line

    def __repr__(self) -> str:
        return f"Location({self.backend!r}, {self.display()!r})"

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    def display(self) -> str:
        """The path, or the URL with its password masked: safe to print."""
        return str(self.path) if self.is_sqlite else mask_url(self.url or "")

    def sqlalchemy_url(self) -> str:
        return f"sqlite:///{self.path}" if self.is_sqlite else self.url  # type: ignore[return-value]


def locate(db: str | os.PathLike[str] | Location | None = None) -> Location:
    """The database a command uses: ``db`` (a URL or a file), else ``LLMEFF_DATABASE_URL``, else a file.

    An explicit ``db`` beats the environment, as every flag does; the URL variable beats
    ``LLMEFF_HOME``, so a team sets one variable and every llmeff uses its server.
    """
    if isinstance(db, Location):
        return db
    if db is not None:
        text = os.fspath(db)
        return _from_url(text) if isinstance(db, str) and "://" in text else Location("sqlite", path=Path(text).expanduser())
    url = os.environ.get(URL_VARIABLE)
    return _from_url(url) if url else default_file()


def default_file() -> Location:
    """``$LLMEFF_HOME/llmeff.db``, else the file in the user's data directory."""
    home = os.environ.get("LLMEFF_HOME")
    if home:
        return Location("sqlite", path=Path(home).expanduser() / DB_FILE_NAME)
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Location("sqlite", path=Path(data_home) / "llmeff" / DB_FILE_NAME)


def _from_url(url: str) -> Location:
    scheme = url.split("://", 1)[0].lower()
    if scheme == "sqlite":
        return Location("sqlite", path=Path(url.split(":///", 1)[-1]).expanduser())  # as SQLAlchemy reads it
    if scheme in ("postgresql", "postgres"):  # no driver named: the one the extra installs
        return Location("postgresql", url="postgresql+psycopg://" + url.split("://", 1)[1])
    if scheme.startswith("postgresql+"):
        return Location("postgresql", url=url)
    raise InvalidInputError(f"unsupported database URL '{mask_url(url)}': use postgresql+psycopg://user@host/dbname",
                            field="db-url")


_PASSWORD = re.compile(r"(?P<head>://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)")


def mask_url(url: str) -> str:
    """``postgresql+psycopg://user:***@host/db``: the URL with any password replaced."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", url)


def redact(text: str, location: Location) -> str:
    """``text`` (a driver's message, say) with the location's password and URL masked."""
    if location.url:
        password = _PASSWORD.search(location.url)
        text = text.replace(location.url, mask_url(location.url))
        if password and password["password"]:
            from urllib.parse import unquote

            for secret in {password["password"], unquote(password["password"])}:
                text = text.replace(secret, "***")
    return text


# -- SQLAlchemy engines (writes on both backends, reads on PostgreSQL) --------------------------------

_ENGINES: dict[str, object] = {}


def engine(location: Location):
    """A SQLAlchemy engine for ``location`` (cached per process; no pooled connections are kept open)."""
    key = location.sqlalchemy_url()
    if key in _ENGINES:
        return _ENGINES[key]
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    if location.is_sqlite:
        made = create_engine(key, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(made, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # every writer waits for a busy database, never fails at once
            dbapi_conn.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    else:
        try:
            made = create_engine(key, poolclass=NullPool)
        except ImportError as exc:
            raise DatabaseError(f"PostgreSQL needs its driver ({exc.name or 'psycopg'} is not installed): "
                                f"{POSTGRES_EXTRA}") from None
    _ENGINES[key] = made
    return made


def dispose_engines() -> None:
    """Forget the cached engines (a test that drops a database it used calls this first)."""
    for made in _ENGINES.values():
        made.dispose()  # type: ignore[attr-defined]
    _ENGINES.clear()


def is_busy(message: str) -> bool:
    """Whether a SQLite error says another connection held the lock past the busy timeout."""
    return "database is locked" in message or "database is busy" in message


def busy_error(location: Location) -> DatabaseError:
    return DatabaseError(f"database is busy: {location.display()} is locked by another llmeff writing to it "
                         f"for more than {SQLITE_BUSY_TIMEOUT_S:.0f} s; try again")


@contextmanager
def database_errors(location: Location):
    """Driver errors as DatabaseError, with the password masked; a locked SQLite file as "database is busy"."""
    from sqlalchemy import exc as sa_exc

    try:
        yield
    except sa_exc.OperationalError as error:
        message = str(error.orig) if error.orig is not None else str(error)
        if is_busy(message):
            raise busy_error(location) from None
        raise DatabaseError(f"cannot use the database at {location.display()}: "
                            f"{redact(message.strip(), location)}") from None
    except sa_exc.DBAPIError as error:
        message = str(error.orig) if error.orig is not None else str(error)
        raise DatabaseError(f"the database at {location.display()} refused the operation: "
                            f"{redact(message.strip(), location)}") from None


@contextmanager
def write_transaction(location: Location, *, lock: str | None = None):
    """One transaction on a SQLAlchemy connection: committed when the block ends, rolled back on error.

    ``lock`` names a PostgreSQL advisory lock held until the transaction ends, so that two processes
    doing the same maintenance (building the shipped data) take turns; SQLite serialises writers itself.
    """
    from sqlalchemy import text

    with database_errors(location):
        with engine(location).begin() as conn:  # type: ignore[attr-defined]
            if lock is not None and not location.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(lock)})
            yield conn


def _lock_key(name: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# -- the PostgreSQL read path -------------------------------------------------------------------------


class Row:
    """A result row read both ways, as ``sqlite3.Row`` is: ``row["name"]`` and ``row[0]``, and unpacked."""

    __slots__ = ("_keys", "_values")

    def __init__(self, keys: tuple[str, ...], values: tuple):
        self._keys, self._values = keys, values

    def keys(self) -> list[str]:
        return list(self._keys)

    def __getitem__(self, key: int | str):
        if isinstance(key, str):
            return self._values[self._keys.index(key)]
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class Cursor:
    def __init__(self, result):
        self._keys = tuple(result.keys()) if result.returns_rows else ()
        self._rows = [Row(self._keys, tuple(r)) for r in result] if result.returns_rows else []

    def fetchone(self) -> Row | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[Row]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self):
        return iter(self.fetchall())


class ServerConnection:
    """The small part of ``sqlite3.Connection`` the read code uses, over one read-only SQLAlchemy transaction.

    ``?`` placeholders become named binds, so every value travels as a bound parameter.
    """

    def __init__(self, location: Location):
        self.location = location
        with database_errors(location):
            self._conn = engine(location).connect().execution_options(postgresql_readonly=True)  # type: ignore[attr-defined]

    def execute(self, sql: str, params: tuple | list = ()) -> Cursor:
        from sqlalchemy import text

        pieces = sql.split("?")
        if len(pieces) - 1 != len(params):
            raise ValueError(f"{len(pieces) - 1} placeholders, {len(params)} parameters")
        named = pieces[0] + "".join(f":p{i}{piece}" for i, piece in enumerate(pieces[1:]))
        with database_errors(self.location):
            return Cursor(self._conn.execute(text(named), {f"p{i}": v for i, v in enumerate(params)}))

    def close(self) -> None:
        self._conn.close()


def table_names(conn) -> set[str]:
    """The tables of the database ``conn`` reads (the stdlib connection or the server adapter)."""
    if isinstance(conn, ServerConnection):
        sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {row[0] for row in conn.execute(sql)}
