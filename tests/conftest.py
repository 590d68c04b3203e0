"""Shared fixtures: one knowledge base built from the shipped data for the whole session, on each backend.

The database tests take ``backend`` (``sqlite``, ``postgresql``) through ``shipped_db`` (the shipped
registry, read only), ``fresh_db`` (a writable copy of it) or ``empty_db`` (nothing built yet). The
PostgreSQL side needs a server: ``LLMEFF_TEST_POSTGRES_URL`` (``.ci/run`` starts one and sets it).
Without one the PostgreSQL cases skip, saying why; under CI (``CI=true``) they fail instead, so that a
green CI run means PostgreSQL was exercised.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest

from llmeff.kb.datafiles import default_data_dir

POSTGRES_URL_VARIABLE = "LLMEFF_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def kb_path(tmp_path_factory) -> Path:
    """A database built once from the shipped data/."""
    from llmeff import db

    path = tmp_path_factory.mktemp("kb") / "llmeff.db"
    db.build_database(path)
    return path


@pytest.fixture()
def kb(kb_path):
    from llmeff.kb.api import open_kb

    with open_kb(kb_path) as opened:
        yield opened


@pytest.fixture()
def data_copy(tmp_path) -> Path:
    """A writable copy of the shipped data/ directory, for tests that break it on purpose."""
    target = tmp_path / "data"
    shutil.copytree(default_data_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


class PostgresServer:
    """Databases made and dropped on the test server, through its maintenance connection."""

    def __init__(self, url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.url = make_url(url)
        self._admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self._names = (f"llmeff_t{os.getpid()}_{n}" for n in itertools.count())
        self.made: list[str] = []

    def ping(self) -> str:
        from sqlalchemy import text

        with self._admin.connect() as conn:
            return conn.execute(text("SHOW server_version")).scalar_one()

    def create(self, template: str | None = None) -> str:
        """A new database (a copy of ``template`` when given), as a URL string with the password."""
        from sqlalchemy import text

        from llmeff import backend

        name = next(self._names)
        if template is not None:
            backend.dispose_engines()  # PostgreSQL copies a template only while nobody is connected to it
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
        self.made.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        from sqlalchemy import text
        from sqlalchemy.engine import make_url

        from llmeff import backend

        backend.dispose_engines()
        name = make_url(url).database
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.made.remove(name)

    def close(self) -> None:
        for name in list(self.made):
            self.drop(self.url.set(database=name).render_as_string(hide_password=False))
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres():
    """The test server, or a skip (locally) / a failure (under CI) saying why there is none."""
    url = os.environ.get(POSTGRES_URL_VARIABLE)
    in_ci = os.environ.get("CI") == "true"
    if not url:
        reason = f"no PostgreSQL server: set {POSTGRES_URL_VARIABLE} (.ci/run starts one)"
        pytest.fail(f"CI=true but {reason}") if in_ci else pytest.skip(reason)
    try:
        server = PostgresServer(url)
        server.ping()
    except Exception as exc:  # the driver's own error types vary; any failure to connect is the same news
        from llmeff.backend import mask_url

        reason = f"PostgreSQL at {mask_url(url)} is unreachable: {type(exc).__name__}"
        pytest.fail(f"CI=true but {reason}") if in_ci else pytest.skip(reason)
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_template(postgres) -> str:
    """The name of a database holding the shipped data, built once; the tests' databases copy it."""
    from sqlalchemy.engine import make_url

    from llmeff import db

    url = postgres.create()
    db.build_database(url)
    return make_url(url).database


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def shipped_db(backend, request):
    """The shipped registry on ``backend``, for tests that only read: a file path or a URL string."""
    if backend == "sqlite":
        return request.getfixturevalue("kb_path")
    postgres = request.getfixturevalue("postgres")
    return postgres.create(template=request.getfixturevalue("postgres_template"))


@pytest.fixture()
def fresh_db(backend, request, tmp_path):
    """A writable copy of the shipped registry on ``backend``, dropped after the test."""
    if backend == "sqlite":
        target = tmp_path / "llmeff.db"
        shutil.copy(request.getfixturevalue("kb_path"), target)
        yield target
        return
    postgres = request.getfixturevalue("postgres")
    url = postgres.create(template=request.getfixturevalue("postgres_template"))
    yield url
    postgres.drop(url)


@pytest.fixture()
def empty_db(backend, request, tmp_path):
    """A database on ``backend`` that nothing has built yet (a file not yet made, an empty server database)."""
    if backend == "sqlite":
        yield tmp_path / "kb.db"
        return
    postgres = request.getfixturevalue("postgres")
    url = postgres.create()
    yield url
    postgres.drop(url)


@pytest.fixture()
def store_kb(shipped_db):
    """The knowledge base opened on ``shipped_db`` (every read query, on each backend)."""
    from llmeff.kb.api import open_kb

    with open_kb(shipped_db) as opened:
        yield opened


def _sql(db, statement: str, **params) -> list[tuple]:
    """Run one statement (``:name`` parameters) on a database, independently of llmeff; its rows."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    url = db if isinstance(db, str) else f"sqlite:///{db}"
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sql():
    return _sql


@pytest.fixture(scope="session")
def db_args():
    """The command-line flags that point llmeff at a test database (a file or a URL)."""
    return lambda db: ["--db-url", db] if isinstance(db, str) else ["--db", str(db)]
