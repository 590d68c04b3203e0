"""The stored calibration: saved, replaced by the next fit, read back, on both backends."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from llmeff.benchmarks.fits import load_fit, save_fit

LEGACY = Path(__file__).parents[1] / "data" / "legacy" / "llmeff-v4.db"


def test_a_new_fit_replaces_the_stored_one(fresh_db, tmp_path, sql):
    source = shutil.copy(LEGACY, tmp_path / "fitted.db")
    fitted = load_fit(source)  # the fit `llmeff bench calibrate` stored in the v4 fixture
    assert fitted is not None and load_fit(fresh_db) is None
    save_fit(fresh_db, fitted)
    save_fit(fresh_db, replace(fitted, registry_digest="0123456789abcdef"))
    assert sql(fresh_db, "SELECT id, registry_digest FROM calibration") == [("default", "0123456789abcdef")]
    again = load_fit(fresh_db)
    assert again.fit == fitted.fit and again.rows == fitted.rows and again.summary == fitted.summary
