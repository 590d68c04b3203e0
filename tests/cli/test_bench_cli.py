"""``llmeff bench`` as a user meets it: filters checked against the shipped CSV, errors, nothing stored by accident.

Every test runs on its own copy of the session database (calibrate and import write to it), on
SQLite and on PostgreSQL (``fresh_db``).
"""

from __future__ import annotations

import csv
import json
from collections import Counter

import pandas as pd
import pytest

from llmeff.benchmarks.records import COLUMNS
from llmeff.cli.app import main
from llmeff.kb.datafiles import default_data_dir

SHIPPED_CSV = default_data_dir() / "measurements" / "measurements.csv"


@pytest.fixture(scope="module")
def shipped() -> pd.DataFrame:
    return pd.read_csv(SHIPPED_CSV, dtype=str, keep_default_na=False)


@pytest.fixture()
def db_file(fresh_db):
    return fresh_db


@pytest.fixture()
def bench(db_file, db_args, capsys):
    """Run ``llmeff --db <copy> ARGS`` (``--db-url`` on PostgreSQL); returns (exit code, stdout, stderr)."""

    def run(*args: str):
        code = main([*db_args(db_file), *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _key(source_id, locator, model, hardware, metric, value) -> tuple:
    return source_id, locator, model, hardware, metric, float(value)


def _listed(out: str) -> Counter:
    return Counter(_key(r["source_id"], r["source_locator"], r["model"], r["hardware"], r["metric"], r["value"])
                   for r in json.loads(out))


def _expected(frame: pd.DataFrame) -> Counter:
    return Counter(_key(*r) for r in frame[["source_id", "source_locator", "model", "hardware", "metric",
                                            "value"]].itertuples(index=False))


@pytest.fixture()
def measurements(sql):
    return lambda db: sql(db, "SELECT count(*) FROM measurement")[0][0]


def test_list_json_is_the_whole_registry(bench, shipped):
    code, out, _ = bench("bench", "list", "--json")
    assert code == 0
    assert _listed(out) == _expected(shipped)


def test_list_by_metric(bench, shipped):
    code, out, _ = bench("bench", "list", "--metric", "ttft_ms", "--json")
    assert code == 0
    expected = _expected(shipped[shipped["metric"] == "ttft_ms"])
    assert sum(expected.values()) > 0
    assert _listed(out) == expected


def test_list_by_source_prefix(bench, shipped):
    code, out, _ = bench("bench", "list", "--source", "trtllm", "--json")
    assert code == 0
    expected = _expected(shipped[shipped["source_id"].str.startswith("trtllm")])
    assert sum(expected.values()) > 0 and set(shipped["source_id"]) - {k[0] for k in expected}
    assert _listed(out) == expected


def test_list_by_hardware_alias(bench, shipped, kb):
    code, out, _ = bench("bench", "list", "--hardware", "RTX 4090", "--json")
    assert code == 0
    spec = kb.hardware("rtx-4090-24gb")
    names = {spec.id.lower(), *(a.strip().lower() for a in spec.aliases)}
    expected = _expected(shipped[shipped["hardware"].str.strip().str.lower().isin(names)])
    assert sum(expected.values()) > 0
    assert len({k[3] for k in expected}) > 1  # the sources spell it several ways; the alias finds them all
    assert _listed(out) == expected
    assert {r["hardware_id"] for r in json.loads(out)} == {"rtx-4090-24gb"}


def test_list_filters_combine(bench, shipped):
    code, out, _ = bench("bench", "list", "--source", "xiongjiedai", "--metric", "decode_tokens_per_s", "--json")
    assert code == 0
    frame = shipped[shipped["source_id"].str.startswith("xiongjiedai") & (shipped["metric"] == "decode_tokens_per_s")]
    assert len(frame) > 0
    assert _listed(out) == _expected(frame)


def test_list_unknown_hardware_is_a_one_line_error(bench):
    code, out, err = bench("bench", "list", "--hardware", "nonsense")
    assert code == 1 and out == ""
    assert err.startswith("Error:") and "nonsense" in err
    assert "Traceback" not in err


def test_list_unknown_metric_names_the_field(bench):
    code, _, err = bench("bench", "list", "--metric", "tokens", "--json")
    assert code == 1 and err.startswith("Error:") and "metric" in err and "Traceback" not in err


def test_compare_json_shape(bench, shipped):
    code, out, _ = bench("bench", "compare", "--json")
    assert code == 0
    record = json.loads(out)
    assert {"rows", "unpredictable", "overall", "summaries"} <= set(record)
    assert len(record["rows"]) + len(record["unpredictable"]) == len(shipped)
    assert record["overall"]["rows"] == len(record["rows"])
    for row in record["rows"][:20]:
        assert row["error"] == pytest.approx(row["predicted"] / row["measured"] - 1)


def _write_user_csv(path) -> None:
    with open(SHIPPED_CSV, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f))  # the import format's header, as the shipped file writes it
    assert set(header) == set(COLUMNS)
    rows = [
        {"source_id": "my-lab", "source_locator": "run 1", "model": "Llama-2-7B", "hardware": "A100 80GB SXM",
         "device_count": "1", "engine": "vLLM", "weight_dtype": "fp16", "batch_size": "1", "input_tokens": "512",
         "output_tokens": "128", "metric": "decode_tokens_per_s", "value": "80.5", "unit": "tokens/s"},
        {"source_id": "my-lab", "source_locator": "run 2", "model": "LLaMA 3 8B", "hardware": "RTX 4090",
         "device_count": "1", "engine": "llama.cpp", "weight_dtype": "q4_k_m", "batch_size": "1",
         "input_tokens": "0", "output_tokens": "128", "metric": "decode_tokens_per_s", "value": "120",
         "unit": "tokens/s"},
    ]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)


def test_compare_a_user_file_stores_nothing(bench, db_file, tmp_path, measurements):
    path = tmp_path / "mine.csv"
    _write_user_csv(path)
    before = measurements(db_file)
    code, out, err = bench("bench", "compare", str(path), "--json")
    assert code == 0, err
    record = json.loads(out)
    assert len(record["rows"]) == 2 and record["unpredictable"] == []
    assert {r["source_id"] for r in record["rows"]} == {"my-lab"}
    assert {r["measured"] for r in record["rows"]} == {80.5, 120.0}
    assert measurements(db_file) == before
    code, out, _ = bench("bench", "compare", str(path))  # the tables, too
    assert code == 0 and "my-lab" in out
    assert measurements(db_file) == before


def test_export_then_dry_run_import_adds_nothing(bench, db_file, tmp_path, measurements):
    path = tmp_path / "trtllm.json"
    code, listed, _ = bench("bench", "list", "--source", "trtllm", "--json")
    assert code == 0 and all(r["model_id"] and r["hardware_id"] for r in json.loads(listed))
    code, out, err = bench("bench", "export", "--source", "trtllm", "--format", "json", "-o", str(path))
    assert code == 0, err
    exported = json.loads(path.read_text(encoding="utf-8"))["measurements"]
    assert len(exported) == len(json.loads(listed)) > 0
    before = measurements(db_file)
    code, out, err = bench("bench", "import", str(path), "--dry-run")
    assert code == 0, err
    assert "would add 0" in out
    code, out, _ = bench("bench", "import", str(path), "--dry-run", "--json")
    result = json.loads(out)
    assert (result["added"], result["already_stored"], result["rows"]) == (0, len(exported), len(exported))
    assert measurements(db_file) == before


def test_export_of_the_whole_registry_re_imports(bench, tmp_path):
    path = tmp_path / "all.json"
    assert bench("bench", "export", "--format", "json", "-o", str(path))[0] == 0
    code, out, err = bench("bench", "import", str(path), "--dry-run")
    assert code == 0, err
    assert "would add 0" in out


def _efficiency_source(bench, *extra: str) -> str:
    code, out, err = bench("analyze", "--model", "llama-2-7b", "--hardware", "rtx-4090-24gb", "--json", *extra)
    assert code == 0, err
    return json.loads(out)["roof"]["efficiency"]["source"]


def test_calibrate_stores_a_fit_that_analyze_then_uses(bench, db_file):
    from llmeff.benchmarks.fits import load_fit

    assert load_fit(db_file) is None
    before = _efficiency_source(bench)
    assert not before.startswith("calibrated by llmeff bench calibrate")
    code, out, err = bench("bench", "calibrate", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["mode"] == "engine" and report["fitted_rows"] > 0
    stored = load_fit(db_file)
    assert stored is not None and stored.fit.mode == "engine"
    assert len(stored.rows) == report["fitted_rows"]
    assert _efficiency_source(bench).startswith("calibrated by llmeff bench calibrate")
    assert not _efficiency_source(bench, "--uncalibrated").startswith("calibrated by llmeff bench calibrate")
    assert _efficiency_source(bench, "--uncalibrated") == before


def test_calibrate_unknown_mode_names_the_field(bench, db_file):
    from llmeff.benchmarks.fits import load_fit

    code, out, err = bench("bench", "calibrate", "--mode", "nonsense")
    assert code == 1 and out == ""
    assert err.startswith("Error:") and "mode" in err and "nonsense" in err and "Traceback" not in err
    assert load_fit(db_file) is None


def test_export_to_a_missing_folder_is_a_clear_error(bench):
    code, out, err = bench("bench", "export", "--output", "/nonexistent/dir/x.csv")
    assert code == 1 and out == ""
    assert err.startswith("Error:") and "/nonexistent/dir" in err and "does not exist" in err
    assert "Traceback" not in err
