"""``db copy``: a laptop's user rows and calibration go to the team's database and back, each once.

The source is the v4 fixture (two user-imported rows and a fit: see test_schema_upgrade); the
target is ``fresh_db`` on each backend.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmeff.benchmarks.transfer import copy_user_rows
from llmeff.errors import InvalidInputError

LEGACY = Path(__file__).parents[1] / "data" / "legacy" / "llmeff-v4.db"
USER_ROWS = "SELECT * FROM measurement WHERE origin = 'user' ORDER BY id"


@pytest.fixture()
def laptop(tmp_path) -> Path:
    target = tmp_path / "laptop.db"
    shutil.copy(LEGACY, target)
    return target


def test_push_copies_user_rows_and_the_fit_once(laptop, fresh_db, sql):
    first = copy_user_rows(laptop, fresh_db)
    assert (first.measurements_copied, first.measurements_skipped) == (2, 0)
    assert (first.calibrations_copied, first.calibrations_skipped) == (1, 0)
    assert sql(fresh_db, USER_ROWS) == sql(laptop, USER_ROWS)  # every column as stored on the laptop
    assert sql(fresh_db, "SELECT * FROM calibration") == sql(laptop, "SELECT * FROM calibration")
    again = copy_user_rows(laptop, fresh_db)
    assert (again.measurements_copied, again.measurements_skipped) == (0, 2)
    assert (again.calibrations_copied, again.calibrations_skipped) == (0, 1)
    assert sql(fresh_db, "SELECT count(*) FROM measurement")[0][0] == 622 + 2


def test_pull_brings_the_team_rows_to_a_new_laptop(laptop, fresh_db, tmp_path, sql):
    copy_user_rows(laptop, fresh_db)
    new_laptop = tmp_path / "new.db"  # nothing built yet: the copy builds it first
    pulled = copy_user_rows(fresh_db, new_laptop)
    assert (pulled.measurements_copied, pulled.calibrations_copied) == (2, 1)
    assert sql(new_laptop, USER_ROWS) == sql(laptop, USER_ROWS)


def test_shipped_rows_never_travel(fresh_db, tmp_path, sql):
    result = copy_user_rows(fresh_db, tmp_path / "other.db")
    assert (result.measurements_copied, result.measurements_skipped, result.calibrations_copied) == (0, 0, 0)


def test_copying_a_database_onto_itself_is_refused(fresh_db):
    with pytest.raises(InvalidInputError, match="the source and the target are the same database"):
        copy_user_rows(fresh_db, fresh_db)
