"""Database lifecycle: built once, rebuilt when the data changes, user rows kept, bad databases refused.

The lifecycle runs on both backends (``empty_db``: a file not yet made, or an empty PostgreSQL
database); what only a file can suffer (corruption, a half-written first build) stays SQLite's.
"""

from __future__ import annotations

import sqlite3

import pytest

from llmeff import db
from llmeff.errors import DatabaseError, DataError
from llmeff.kb.datafiles import content_hash, default_data_dir


@pytest.fixture()
def meta(sql):
    return lambda where: dict(sql(where, "SELECT key, value FROM llmeff_meta"))


@pytest.fixture()
def tables(sql, backend):
    if backend == "sqlite":
        return lambda where: sorted(r[0] for r in sql(where, "SELECT name FROM sqlite_master WHERE type = 'table'"))
    return lambda where: sorted(r[0] for r in sql(
        where, "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"))


def test_build_records_schema_version_and_data_hash(shipped_db, meta):
    recorded = meta(shipped_db)
    assert recorded["schema_version"] == str(db.SCHEMA_VERSION) == "5"
    assert recorded["content_hash"] == content_hash(default_data_dir())


def test_up_to_date_database_is_not_rebuilt(empty_db, data_copy, sql):
    db.ensure_database(empty_db, data_copy)
    # a rebuild would replace the shipped tables, and this alias with them
    sql(empty_db, "INSERT INTO techniquealias (alias, technique_id, display) VALUES ('marker', 'flash-attention', 'M')")
    db.ensure_database(empty_db, data_copy)
    assert sql(empty_db, "SELECT display FROM techniquealias WHERE alias = 'marker'") == [("M",)]


def test_up_to_date_file_is_not_written(tmp_path, data_copy):
    path = tmp_path / "kb.db"
    db.ensure_database(path, data_copy)
    before = path.stat().st_mtime_ns
    db.ensure_database(path, data_copy)
    assert path.stat().st_mtime_ns == before


def test_changed_data_rebuilds_shipped_rows_and_keeps_user_rows(empty_db, data_copy, sql, meta):
    db.ensure_database(empty_db, data_copy)
    # a table a later module owns, holding a user's import
    sql(empty_db, "CREATE TABLE user_measurement (id INTEGER PRIMARY KEY, value REAL)")
    sql(empty_db, "INSERT INTO user_measurement (id, value) VALUES (1, 42.0)")
    awq = data_copy / "techniques" / "weight-only-quant-awq.toml"
    awq.write_text(awq.read_text().replace('name = "AWQ', 'name = "Renamed AWQ'))
    db.ensure_database(empty_db, data_copy)
    assert sql(empty_db, "SELECT name FROM technique WHERE id = 'weight-only-quant-awq'")[0][0].startswith("Renamed AWQ")
    assert sql(empty_db, "SELECT value FROM user_measurement") == [(42.0,)]
    assert meta(empty_db)["content_hash"] == content_hash(data_copy)


def test_failed_rebuild_leaves_the_old_database_untouched(empty_db, data_copy, meta):
    db.ensure_database(empty_db, data_copy)
    old_hash = meta(empty_db)["content_hash"]
    broken = data_copy / "hardware" / "t4-16gb.toml"
    broken.write_text(broken.read_text().replace("sources = [", "not_a_field = 1\nsources = ["))
    with pytest.raises(DataError) as caught:
        db.ensure_database(empty_db, data_copy)
    assert str(caught.value).startswith("data/hardware/t4-16gb.toml: field 'not_a_field': Extra inputs are not permitted")
    assert meta(empty_db)["content_hash"] == old_hash


def test_failed_first_build_leaves_no_file(tmp_path, data_copy):
    (data_copy / "techniques" / "flash-attention.toml").write_text("id = ")
    path = tmp_path / "kb.db"
    with pytest.raises(DataError, match="data/techniques/flash-attention.toml: not valid TOML"):
        db.ensure_database(path, data_copy)
    assert list(tmp_path.iterdir()) == [data_copy]


def test_foreign_database_is_refused_not_overwritten(empty_db, sql, tables):
    sql(empty_db, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(DatabaseError, match="is not an llmeff database"):
        db.ensure_database(empty_db)
    assert tables(empty_db) == ["invoices"]


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DatabaseError, match="is not a readable SQLite database"):
        db.ensure_database(path)


def test_database_from_a_newer_llmeff_is_refused(empty_db, data_copy, sql):
    db.ensure_database(empty_db, data_copy)
    sql(empty_db, "UPDATE llmeff_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(DatabaseError, match=r"built by a newer llmeff \(schema 999"):
        db.ensure_database(empty_db, data_copy)


def test_a_new_file_uses_write_ahead_logging(tmp_path, data_copy):
    path = tmp_path / "kb.db"
    db.ensure_database(path, data_copy)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_location_follows_flag_then_environment(tmp_path, monkeypatch):
    from llmeff.backend import locate

    monkeypatch.delenv("LLMEFF_DATABASE_URL", raising=False)
    monkeypatch.setenv("LLMEFF_HOME", str(tmp_path / "home"))
    assert db.database_path() == tmp_path / "home" / "llmeff.db"
    assert db.database_path(tmp_path / "x.db") == tmp_path / "x.db"
    assert locate(None).path == tmp_path / "home" / "llmeff.db"
    # the URL variable beats LLMEFF_HOME; an explicit file or URL beats both
    monkeypatch.setenv("LLMEFF_DATABASE_URL", "postgresql://team@dbhost/llmeff")
    assert (locate(None).backend, locate(None).url) == ("postgresql", "postgresql+psycopg://team@dbhost/llmeff")
    assert locate(tmp_path / "x.db").path == tmp_path / "x.db"
    assert locate("postgresql+psycopg://me@other/db").url == "postgresql+psycopg://me@other/db"
    assert locate("sqlite:////tmp/a.db").path.as_posix() == "/tmp/a.db"


def test_a_location_never_shows_its_password():
    from llmeff.backend import locate, redact

    where = locate("postgresql+psycopg://team:s3cret%2Fpw@dbhost:5432/llmeff")
    assert where.display() == "postgresql+psycopg://team:***@dbhost:5432/llmeff"
    assert "s3cret" not in repr(where) and "s3cret" not in str(where)
    assert redact('password "s3cret/pw" rejected for postgresql+psycopg://team:s3cret%2Fpw@dbhost', where) == \
        'password "***" rejected for postgresql+psycopg://team:***@dbhost'
