"""Importing measurements: parsing errors name row and field, one transaction, stable identity.

The tests that store run on both backends (``fresh_db``: a copy of the shipped registry on SQLite or
PostgreSQL).
"""

from __future__ import annotations

import csv
import json

import pytest

from llmeff.benchmarks.ingest import import_measurements
from llmeff.benchmarks.records import COLUMNS, read_measurement_file
from llmeff.errors import InvalidInputError

GOOD = {
    "source_id": "my-lab-2026", "source_locator": "run 1", "model": "Llama-2-7B", "hardware": "A100 80GB SXM",
    "device_count": "1", "engine": "vLLM", "weight_dtype": "fp16", "batch_size": "1", "input_tokens": "512",
    "output_tokens": "128", "metric": "decode_tokens_per_s", "value": "80.5", "unit": "tokens/s",
}


def write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


@pytest.fixture()
def db_file(fresh_db):
    return fresh_db


@pytest.fixture()
def measurement_count(sql):
    def count(db, origin=None) -> int:
        if origin is None:
            return sql(db, "SELECT count(*) FROM measurement")[0][0]
        return sql(db, "SELECT count(*) FROM measurement WHERE origin = :origin", origin=origin)[0][0]

    return count


def shipped_row_count() -> int:
    from llmeff.kb.datafiles import default_data_dir

    with open(default_data_dir() / "measurements" / "measurements.csv", newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.DictReader(f))


def test_the_shipped_registry_is_in_a_new_database(db_file, measurement_count):
    # every row of the shipped file is stored once (the file has no exact duplicate rows)
    assert measurement_count(db_file, "shipped") == shipped_row_count() == 622
    assert measurement_count(db_file, "user") == 0


def test_import_resolves_aliases_and_stores_the_rows(db_file, tmp_path, sql):
    second = dict(GOOD, source_locator="run 2", value="81.0")
    path = write_csv(tmp_path / "mine.csv", [GOOD, second])
    result = import_measurements(path, db=db_file)
    assert (result.rows, result.added, result.already_stored) == (2, 2, 0)
    stored = sql(db_file, "SELECT model_name, model_id, hardware_name, hardware_id, value FROM measurement "
                          "WHERE origin = 'user' ORDER BY value")
    assert stored == [("Llama-2-7B", "llama-2-7b", "A100 80GB SXM", "a100-sxm4-80gb", 80.5),
                      ("Llama-2-7B", "llama-2-7b", "A100 80GB SXM", "a100-sxm4-80gb", 81.0)]


def test_reimporting_the_same_file_adds_nothing(db_file, tmp_path, measurement_count):
    path = write_csv(tmp_path / "mine.csv", [GOOD])
    import_measurements(path, db=db_file)
    before = measurement_count(db_file)
    again = import_measurements(path, db=db_file)
    assert (again.added, again.already_stored) == (0, 1)
    assert measurement_count(db_file) == before


def test_a_repeated_row_in_one_file_is_stored_once(db_file, tmp_path):
    result = import_measurements(write_csv(tmp_path / "mine.csv", [GOOD, GOOD]), db=db_file)
    assert (result.added, result.repeated_in_file) == (1, 1)


def test_dry_run_reports_and_writes_nothing(db_file, tmp_path, measurement_count):
    before = measurement_count(db_file)
    result = import_measurements(write_csv(tmp_path / "mine.csv", [GOOD]), db=db_file, dry_run=True)
    assert result.dry_run and result.added == 1 and result.measurements_after == before
    assert measurement_count(db_file) == before


def test_one_unknown_name_and_nothing_is_written(db_file, tmp_path, measurement_count):
    bad = dict(GOOD, source_locator="run 3", hardware="A100 80GB SXN")
    path = write_csv(tmp_path / "mine.csv", [GOOD, dict(GOOD, source_locator="run 2"), bad])
    before = measurement_count(db_file)
    with pytest.raises(InvalidInputError) as caught:
        import_measurements(path, db=db_file)
    message = str(caught.value)
    assert "mine.csv row 3" in message and "field 'hardware'" in message
    assert "a100-sxm4-80gb" in message  # the close match is suggested
    assert measurement_count(db_file) == before


def test_unknown_model_names_the_field(db_file, tmp_path):
    path = write_csv(tmp_path / "mine.csv", [dict(GOOD, model="Llama-2-7Bx")])
    with pytest.raises(InvalidInputError, match=r"row 1: field 'model': unknown model 'Llama-2-7Bx'.*llama-2-7b"):
        import_measurements(path, db=db_file)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("value", "fast", "must be a positive number"),
    ("value", "-3", "must be a positive number"),
    ("device_count", "1.5", "whole number"),
    ("batch_size", "0", "whole number of at least 1"),
    ("metric", "tokens_per_watt", "unknown metric"),
    ("unit", "ms", "does not fit decode_tokens_per_s"),
    ("source_id", "", "every row needs it"),
])
def test_bad_fields_are_named(tmp_path, field, value, expected):
    path = write_csv(tmp_path / "bad.csv", [GOOD, dict(GOOD, **{field: value})])
    with pytest.raises(InvalidInputError) as caught:
        read_measurement_file(path)
    assert f"bad.csv row 2: field '{field}'" in str(caught.value) and expected in str(caught.value)


def test_csv_header_problems(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("source_id,model\nx,y\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="lacks the column"):
        read_measurement_file(path)
    path.write_text(",".join(COLUMNS) + ",colour\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="unknown column"):
        read_measurement_file(path)


def test_json_files_in_both_shapes(db_file, tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([GOOD]), encoding="utf-8")
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"measurements": [dict(GOOD, device_count=1, value=80.5)]}), encoding="utf-8")
    # the same measurement whether numbers are written as text or as JSON numbers
    assert read_measurement_file(listed).rows[0].identity == read_measurement_file(wrapped).rows[0].identity
    assert import_measurements(listed, db=db_file).added == 1
    assert import_measurements(wrapped, db=db_file).added == 0


def test_malformed_json_and_unsupported_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("[{", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        read_measurement_file(broken)
    other = tmp_path / "rows.xlsx"
    other.write_bytes(b"PK")
    with pytest.raises(InvalidInputError, match="unsupported file type"):
        read_measurement_file(other)
    with pytest.raises(InvalidInputError, match="no such file"):
        read_measurement_file(tmp_path / "absent.csv")


def test_user_rows_survive_a_rebuild(db_file, tmp_path, sql, measurement_count):
    from llmeff import db

    import_measurements(write_csv(tmp_path / "mine.csv", [GOOD]), db=db_file)
    sql(db_file, "UPDATE llmeff_meta SET value = 'stale' WHERE key = 'content_hash'")  # as a data change would
    db.ensure_database(db_file)
    assert measurement_count(db_file, "user") == 1
    assert measurement_count(db_file, "shipped") == 622
