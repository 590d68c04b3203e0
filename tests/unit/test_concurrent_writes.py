"""Several llmeff processes writing one registry at once, and one killed mid-import, on both backends.

Each writer is a real ``llmeff bench import`` process. The expected counts are the files' own row
counts: every row identity arrives exactly once, whoever stored it.
"""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from llmeff.benchmarks.records import COLUMNS

ROW = {
    "source_id": "team-lab", "source_locator": "run 1", "model": "Llama-2-7B", "hardware": "A100 80GB SXM",
    "device_count": "1", "engine": "vLLM", "weight_dtype": "fp16", "batch_size": "1", "input_tokens": "512",
    "output_tokens": "128", "metric": "decode_tokens_per_s", "value": "80.5", "unit": "tokens/s",
}


def write_rows(path, source: str, count: int):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for n in range(count):
            writer.writerow(dict(ROW, source_id=source, source_locator=f"run {n}", value=str(50 + n % 97)))
    return path


def start_import(db_args, db, path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "llmeff.cli.app", *db_args(db), "bench", "import", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def count(sql, db, source: str) -> int:
    return sql(db, "SELECT count(*) FROM measurement WHERE source_id = :s", s=source)[0][0]


def test_four_processes_import_four_files_at_once(fresh_db, tmp_path, db_args, sql):
    files = {f"lab-{n}": write_rows(tmp_path / f"lab-{n}.csv", f"lab-{n}", 1500) for n in range(4)}
    processes = [start_import(db_args, fresh_db, path) for path in files.values()]
    outputs = [finish(p) for p in processes]
    assert all("added 1500, 0 already stored" in out for out in outputs), outputs
    for source in files:
        assert count(sql, fresh_db, source) == 1500
    assert sql(fresh_db, "SELECT count(*) FROM measurement")[0][0] == 622 + 4 * 1500


def test_two_processes_importing_one_file_store_it_once(fresh_db, tmp_path, db_args, sql):
    path = write_rows(tmp_path / "same.csv", "same-lab", 3000)
    processes = [start_import(db_args, fresh_db, path) for _ in range(2)]
    outputs = [finish(p) for p in processes]
    assert count(sql, fresh_db, "same-lab") == 3000
    # each process says what it stored itself: between them, every row once
    added = [int(out.split("added ")[1].split(",")[0]) for out in outputs]
    assert sum(added) == 3000, outputs


def _writing(db) -> bool:
    """Whether another connection holds the database's write transaction (SQLite) or has written (PostgreSQL)."""
    if isinstance(db, str):
        return False
    try:
        with sqlite3.connect(db, timeout=0) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.rollback()
        return False
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)


def _server_writing(sql, db) -> bool:
    # a backend of the import's database whose transaction has an id has written rows (xids are lazy)
    return sql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL")[0][0] > 0


def _server_idle(sql, db) -> bool:
    return sql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()")[0][0] == 0


def test_an_import_killed_mid_transaction_leaves_nothing(fresh_db, tmp_path, db_args, sql):
    path = write_rows(tmp_path / "big.csv", "killed-lab", 40000)
    process = start_import(db_args, fresh_db, path)
    on_server = isinstance(fresh_db, str)
    deadline = time.monotonic() + 240
    while not (_server_writing(sql, fresh_db) if on_server else _writing(fresh_db)):
        assert process.poll() is None, "the import finished before it could be killed: make the file bigger"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    if on_server:  # the server rolls back once it notices the client is gone
        while not _server_idle(sql, fresh_db):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert count(sql, fresh_db, "killed-lab") == 0
    assert sql(fresh_db, "SELECT count(*) FROM measurement")[0][0] == 622
    # and the registry still takes the same file whole
    finish(start_import(db_args, fresh_db, write_rows(tmp_path / "small.csv", "killed-lab", 10)))
    assert count(sql, fresh_db, "killed-lab") == 10


def test_a_sqlite_writer_held_past_the_busy_timeout_is_a_clear_error(kb_path, tmp_path, monkeypatch):
    # SQLite only: PostgreSQL writers of different rows do not wait for each other
    import shutil

    from llmeff import backend
    from llmeff.benchmarks.ingest import import_measurements
    from llmeff.errors import DatabaseError

    monkeypatch.setattr(backend, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    backend.dispose_engines()
    fresh_db = shutil.copy(kb_path, tmp_path / "llmeff.db")
    path = write_rows(tmp_path / "one.csv", "busy-lab", 1)
    holder = sqlite3.connect(fresh_db)
    holder.execute("BEGIN IMMEDIATE")  # another process's write transaction that does not end
    try:
        with pytest.raises(DatabaseError, match=r"^database is busy: .* is locked by another llmeff"):
            import_measurements(path, db=fresh_db)
    finally:
        holder.rollback()
        holder.close()
        backend.dispose_engines()
    assert import_measurements(path, db=fresh_db).added == 1


def test_two_processes_building_one_server_database_build_it_once(postgres, db_args, sql):
    # PostgreSQL: the build's advisory lock makes the second process wait, then find it built
    # (a first SQLite build writes a scratch file of its own and renames it into place)
    empty_db = postgres.create()
    processes = [subprocess.Popen([sys.executable, "-m", "llmeff.cli.app", *db_args(empty_db), "techniques", "list",
                                   "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    for process in processes:
        finish(process)
    assert sql(empty_db, "SELECT count(*) FROM measurement")[0][0] == 622
    assert sql(empty_db, "SELECT count(*) FROM llmeff_meta")[0][0] == 3
    # built once: the server counted each stored row inserted once (a second build would double it;
    # the processes have exited, so their statistics are flushed)
    tables = [r[0] for r in sql(empty_db, "SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = current_schema()")]
    stored = sum(sql(empty_db, f'SELECT count(*) FROM "{t}"')[0][0] for t in tables)
    inserted = sql(empty_db, "SELECT tup_inserted FROM pg_stat_database WHERE datname = current_database()")[0][0]
    assert stored <= inserted < 2 * stored
