"""A database made by the previous release (schema 4) is upgraded in place, keeping what its user stored.

``tests/data/legacy/llmeff-v4.db`` was built by the code before schema 5, then given the two rows of
``v4-user-rows.csv`` with ``llmeff bench import`` and a fit with ``llmeff bench calibrate``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from llmeff import db

LEGACY = Path(__file__).parents[1] / "data" / "legacy" / "llmeff-v4.db"


def _rows(path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture()
def legacy(tmp_path) -> Path:
    target = tmp_path / "llmeff.db"
    shutil.copy(LEGACY, target)
    return target


def test_the_fixture_is_a_version_4_database():
    assert _rows(LEGACY, "SELECT value FROM llmeff_meta WHERE key = 'schema_version'") == [("4",)]
    assert dict(_rows(LEGACY, "SELECT origin, count(*) FROM measurement GROUP BY origin")) == {"shipped": 622, "user": 2}
    assert [r[2] for r in _rows(LEGACY, "PRAGMA table_info(model)") if r[1] == "params_total"] == ["INTEGER"]


def test_upgrade_keeps_user_rows_and_the_calibration(legacy):
    users_before = _rows(legacy, "SELECT * FROM measurement WHERE origin = 'user' ORDER BY id")
    fit_before = _rows(legacy, "SELECT * FROM calibration")
    db.ensure_database(legacy)
    assert _rows(legacy, "SELECT value FROM llmeff_meta WHERE key = 'schema_version'") == [(str(db.SCHEMA_VERSION),)]
    assert _rows(legacy, "SELECT * FROM measurement WHERE origin = 'user' ORDER BY id") == users_before
    assert [r[2] for r in users_before] == ["v4-user-rows.csv"] * 2  # imported_from (id, origin, imported_from, ...)
    assert _rows(legacy, "SELECT * FROM calibration") == fit_before and len(fit_before) == 1
    assert _rows(legacy, "SELECT count(*) FROM measurement WHERE origin = 'shipped'") == [(622,)]
    # what schema 5 changed: 64-bit counts, and the file now logs ahead
    assert [r[2] for r in _rows(legacy, "PRAGMA table_info(model)") if r[1] == "params_total"] == ["BIGINT"]
    assert _rows(legacy, "PRAGMA journal_mode") == [("wal",)]


def test_the_upgraded_registry_lists_and_uses_the_old_rows(legacy, capsys):
    import json

    from llmeff.cli.app import main

    assert main(["--db", str(legacy), "bench", "list", "--origin", "user", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(r["value"] for r in listed) == [80.5, 540.0]  # v4-user-rows.csv
    assert main(["--db", str(legacy), "analyze", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb",
                 "--json"]) == 0
    source = json.loads(capsys.readouterr().out)["roof"]["efficiency"]["source"]
    assert source.startswith("calibrated by llmeff bench calibrate")  # the v4 fit still applies
