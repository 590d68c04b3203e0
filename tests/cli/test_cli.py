"""The command line as a user meets it: exit codes, first lines of errors, JSON output (on both backends)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from llmeff.cli.app import main


@pytest.fixture()
def cli(shipped_db, db_args, capsys):
    """Run ``llmeff --db <session kb> ARGS`` (``--db-url`` on PostgreSQL); returns (exit code, stdout, stderr)."""

    def run(*args: str, db: bool = True):
        argv = (db_args(shipped_db) if db else []) + list(args)
        code = main(argv)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_tree_shows_the_three_levels(cli):
    code, out, _ = cli("techniques", "tree")
    assert code == 0
    for heading in ("Data-level optimization", "Model-level optimization", "System-level optimization"):
        assert heading in out
    assert "npu-chunk-sharing-prefill" in out


def test_list_json_matches_the_library(cli, kb):
    code, out, _ = cli("techniques", "list", "--level", "system-level", "--json")
    assert code == 0
    rows = json.loads(out)
    from llmeff.kb.api import TechniqueFilter

    assert [r["id"] for r in rows] == [t.id for t in kb.techniques(TechniqueFilter(level="system-level"))]


def test_show_prints_papers_and_results(cli):
    code, out, _ = cli("techniques", "show", "AWQ")
    assert code == 0
    assert "2306.00978" in out and "Reported results" in out


def test_search_json(cli):
    code, out, _ = cli("techniques", "search", "kv cache quantization", "--json")
    assert code == 0
    assert "kv-cache-quant-kivi" in [hit["technique"]["id"] for hit in json.loads(out)]


def test_unknown_id_is_one_line_with_suggestions(cli):
    code, out, err = cli("hardware", "show", "h100-sxm")
    assert code == 1 and out == ""
    assert err.splitlines() == [err.strip()]
    assert err.startswith("Error: unknown hardware 'h100-sxm'. Did you mean: h100-sxm-80gb")


def test_models_show_from_registry_and_config(cli, tmp_path):
    code, out, _ = cli("models", "show", "llama-2-7b", "--json")
    assert code == 0
    # Llama-2-7B from its config shapes: 6,738,415,616 parameters (see tests/unit/test_param_count.py).
    assert json.loads(out)["parameters"]["total"] == 6_738_415_616
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    code, out, err = cli("models", "show", "--config", str(config))
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith(f"Error: {config}: field ")


def test_malformed_json_config_is_one_line(cli, tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{not json")
    code, _, err = cli("models", "show", "--config", str(config))
    assert code == 1 and len(err.splitlines()) == 1 and err.startswith(f"Error: {config}")


def test_foreign_database_is_refused(cli, tmp_path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    code, _, err = cli("--db", str(other), "techniques", "list", db=False)
    assert code == 1
    assert err.startswith(f"Error: {other} is not an llmeff database")


def test_usage_errors_keep_exit_code_2(cli):
    code, _, err = cli("techniques", "list", "--no-such-option")
    assert code == 2
    assert "No such option" in err


def test_db_check_and_status(cli):
    code, out, _ = cli("db", "check")
    assert code == 0 and "check: OK" in out
    code, out, _ = cli("db", "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["up_to_date"] is True


def test_debug_flag_reraises(cli, monkeypatch):
    from llmeff.errors import UnknownIdError

    monkeypatch.setenv("LLMEFF_DEBUG", "1")
    with pytest.raises(UnknownIdError):
        cli("techniques", "show", "nope")


def test_installed_console_script_runs(kb_path):
    """The real entry point, in a subprocess: exit code and stderr as a shell sees them."""
    env = {**os.environ, "LLMEFF_HOME": str(kb_path.parent)}
    env.pop("LLMEFF_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "llmeff.cli.app", "models", "show", "no-such-model"],
        capture_output=True, text=True, env=env, check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: unknown model 'no-such-model'")
    assert "Traceback" not in done.stderr
