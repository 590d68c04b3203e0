"""Changing the tables must bump the schema version, so that old databases rebuild."""

from __future__ import annotations

import hashlib

from sqlmodel import SQLModel

import llmeff.benchmarks.tables  # noqa: F401  (defines the measurement tables)
import llmeff.kb.tables  # noqa: F401  (defines the tables)
from llmeff import db


def test_schema_fingerprint_matches_the_tables():
    rows = sorted(
        (t.name, c.name, str(c.type), bool(c.primary_key), bool(c.nullable))
        for t in SQLModel.metadata.sorted_tables
        for c in t.columns
    )
    fingerprint = hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
    assert fingerprint == db.SCHEMA_FINGERPRINT, (
        f"kb/tables.py or benchmarks/tables.py changed: bump llmeff.db.SCHEMA_VERSION and set SCHEMA_FINGERPRINT = '{fingerprint}'"
    )


def test_database_of_an_older_schema_is_rebuilt(tmp_path):
    import sqlite3

    path = tmp_path / "kb.db"
    db.ensure_database(path)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE llmeff_meta SET value = '1' WHERE key = 'schema_version'")
        conn.execute("ALTER TABLE hardware DROP COLUMN processors")  # as a version-1 database lacked it
    db.ensure_database(path)
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(hardware)")]
        version = conn.execute("SELECT value FROM llmeff_meta WHERE key = 'schema_version'").fetchone()[0]
    assert "processors" in columns and version == str(db.SCHEMA_VERSION)
