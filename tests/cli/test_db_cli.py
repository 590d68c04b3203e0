"""``llmeff db status|init|copy`` and ``--db-url`` as a user meets them; passwords never printed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llmeff.cli.app import main

LEGACY = Path(__file__).parents[1] / "data" / "legacy" / "llmeff-v4.db"


@pytest.fixture()
def run(capsys):
    def invoke(*args: str):
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    return make_url(url).password if "://" in url else None


def test_status_names_the_backend_and_masks_the_password(run, shipped_db, db_args, backend):
    code, out, err = run(*db_args(shipped_db), "db", "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["backend"] == backend and status["schema_version"] == 5
    counts = {c["table"]: c["rows"] for c in status["counts"]}
    assert counts["measurement"] == 622 and counts["technique"] == 129
    code, text, _ = run(*db_args(shipped_db), "db", "status")
    assert code == 0 and f"│ backend           │ {backend}" in text
    secret = _password(str(shipped_db))
    if secret:
        assert secret not in out + text and ":***@" in status["path"] and ":***@" in text


def test_init_builds_an_empty_database(run, empty_db, db_args, sql):
    code, out, err = run(*db_args(empty_db), "db", "init")
    assert code == 0, err
    assert out.startswith("Built ") and "(schema 5, data " in out
    secret = _password(str(empty_db))
    assert not secret or secret not in out
    assert sql(empty_db, "SELECT count(*) FROM measurement")[0][0] == 622


def test_database_url_variable_points_every_command_at_the_server(run, postgres, postgres_template, monkeypatch):
    server_db = postgres.create(template=postgres_template)
    monkeypatch.setenv("LLMEFF_DATABASE_URL", server_db)
    monkeypatch.setenv("LLMEFF_HOME", "/nonexistent/never-built")
    code, out, err = run("hardware", "show", "h100-sxm-80gb", "--json")
    assert code == 0, err
    assert json.loads(out)["spec"]["id"] == "h100-sxm-80gb"
    code, out, err = run("db", "status", "--json")
    assert code == 0 and json.loads(out)["backend"] == "postgresql"
    postgres.drop(server_db)


def test_copy_to_and_from_print_counts_without_the_password(run, fresh_db, tmp_path, db_args):
    laptop = tmp_path / "laptop.db"
    shutil.copy(LEGACY, laptop)
    code, out, err = run("--db", str(laptop), "db", "copy", "--to", str(fresh_db))
    assert code == 0, err
    assert "2 measurements (0 already there), 1 calibrations (0 already there)" in out
    secret = _password(str(fresh_db))
    assert not secret or secret not in out
    code, out, err = run(*db_args(fresh_db), "db", "copy", "--from", str(laptop), "--json")
    assert code == 0, err
    assert (json.loads(out)["measurements_copied"], json.loads(out)["measurements_skipped"]) == (0, 2)


def test_copy_needs_exactly_one_direction(run, kb_path):
    code, _, err = run("--db", str(kb_path), "db", "copy")
    assert code == 2 and "give exactly one of --to and --from" in err


def test_db_and_db_url_together_are_a_usage_error(run, kb_path):
    code, _, err = run("--db", str(kb_path), "--db-url", "postgresql://u@h/d", "db", "status")
    assert code == 2 and "give --db or --db-url, not both" in err


def test_an_unreachable_server_is_one_line_without_the_password(run):
    # nothing listens on port 9 of the loopback interface: the driver's own error, masked
    code, out, err = run("--db-url", "postgresql+psycopg://team:s3cret-pw@127.0.0.1:9/llmeff", "db", "status")
    assert code == 1 and out == ""
    assert err.startswith("Error: cannot use the database at postgresql+psycopg://team:***@127.0.0.1:9/llmeff: ")
    assert "s3cret-pw" not in err and len(err.strip().splitlines()) <= 3


def test_an_unsupported_url_is_refused(run):
    code, _, err = run("--db-url", "mysql://u:pw@h/d", "db", "status")
    assert code == 1 and err.startswith("Error: field 'db-url': unsupported database URL 'mysql://u:***@h/d'")


def test_a_missing_driver_names_the_extra():
    # the driver made unimportable in a child process, as in an install without the extra
    script = ("import sys; sys.modules['psycopg'] = None; from llmeff.cli.app import main; "
              "sys.exit(main(['--db-url', 'postgresql+psycopg://u:pw@127.0.0.1:9/x', 'db', 'status']))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("Error: PostgreSQL needs its driver (psycopg is not installed): "
                                  "pip install 'llmeff[postgres]'"), done.stderr


@pytest.mark.parametrize("command", [
    ("analyze", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--batch", "8", "--json"),
    ("plan", "--model", "llama-2-7b", "--hardware", "rtx-4090-24gb", "--batch", "4", "--objective", "tpot", "--json"),
    ("bench", "compare", "--source", "tinychat", "--json"),
    ("models", "list", "--json"),
])
def test_every_command_answers_the_same_on_each_backend(run, shipped_db, db_args, kb_path, command):
    # the SQLite answer is the reference; on PostgreSQL the same command must print the same bytes
    code, reference, err = run("--db", str(kb_path), *command)
    assert code == 0, err
    code, out, err = run(*db_args(shipped_db), *command)
    assert code == 0, err
    assert out == reference
