"""Database lifecycle: built once, rebuilt when the data changes, user rows kept, bad files refused."""

from __future__ import annotations

import sqlite3

import pytest

from llmeff import db
from llmeff.errors import DatabaseError, DataError
from llmeff.kb.datafiles import content_hash


def _meta(path):
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT key, value FROM llmeff_meta"))


def test_build_records_schema_version_and_data_hash(kb_path):
    meta = _meta(kb_path)
    assert meta["schema_version"] == str(db.SCHEMA_VERSION)
    from llmeff.kb.datafiles import default_data_dir

    assert meta["content_hash"] == content_hash(default_data_dir())


def test_up_to_date_database_is_not_rebuilt(tmp_path, data_copy):
    path = tmp_path / "kb.db"
    db.ensure_database(path, data_copy)
    before = path.stat().st_mtime_ns
    db.ensure_database(path, data_copy)
    assert path.stat().st_mtime_ns == before


def test_changed_data_rebuilds_shipped_rows_and_keeps_user_rows(tmp_path, data_copy):
    path = tmp_path / "kb.db"
    db.ensure_database(path, data_copy)
    with sqlite3.connect(path) as conn:  # a table a later module owns, holding a user's import
        conn.execute("CREATE TABLE user_measurement (id INTEGER PRIMARY KEY, value REAL)")
        conn.execute("INSERT INTO user_measurement (value) VALUES (42.0)")
    awq = data_copy / "techniques" / "weight-only-quant-awq.toml"
    awq.write_text(awq.read_text().replace('name = "AWQ', 'name = "Renamed AWQ'))
    db.ensure_database(path, data_copy)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM technique WHERE id = 'weight-only-quant-awq'").fetchone()[0].startswith(
            "Renamed AWQ"
        )
        assert conn.execute("SELECT value FROM user_measurement").fetchall() == [(42.0,)]
    assert _meta(path)["content_hash"] == content_hash(data_copy)


def test_failed_rebuild_leaves_the_old_database_untouched(tmp_path, data_copy):
    path = tmp_path / "kb.db"
    db.ensure_database(path, data_copy)
    old_hash = _meta(path)["content_hash"]
    broken = data_copy / "hardware" / "t4-16gb.toml"
    broken.write_text(broken.read_text().replace("sources = [", "not_a_field = 1\nsources = ["))
    with pytest.raises(DataError) as caught:
        db.ensure_database(path, data_copy)
    assert str(caught.value).startswith("data/hardware/t4-16gb.toml: field 'not_a_field': Extra inputs are not permitted")
    assert _meta(path)["content_hash"] == old_hash


def test_failed_first_build_leaves_no_file(tmp_path, data_copy):
    (data_copy / "techniques" / "flash-attention.toml").write_text("id = ")
    path = tmp_path / "kb.db"
    with pytest.raises(DataError, match="data/techniques/flash-attention.toml: not valid TOML"):
        db.ensure_database(path, data_copy)
    assert list(tmp_path.iterdir()) == [data_copy]


def test_foreign_sqlite_file_is_refused_not_overwritten(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(DatabaseError, match="is not an llmeff database"):
        db.ensure_database(path)
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["invoices"]


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DatabaseError, match="is not a readable SQLite database"):
        db.ensure_database(path)


def test_database_from_a_newer_llmeff_is_refused(tmp_path, data_copy):
    path = tmp_path / "kb.db"
    db.ensure_database(path, data_copy)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE llmeff_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(DatabaseError, match=r"built by a newer llmeff \(schema 999"):
        db.ensure_database(path, data_copy)


def test_location_follows_flag_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMEFF_HOME", str(tmp_path / "home"))
    assert db.database_path() == tmp_path / "home" / "llmeff.db"
    assert db.database_path(tmp_path / "x.db") == tmp_path / "x.db"
