"""What ``import llmeff`` offers a notebook user, and that it stays cheap to import."""

from __future__ import annotations

import subprocess
import sys

import llmeff


def test_public_names_resolve():
    for name in llmeff.__all__:
        assert getattr(llmeff, name) is not None


def test_library_and_cli_agree(kb_path, capsys):
    from llmeff.cli.app import main

    with llmeff.open_kb(kb_path) as kb:
        ids = [t.id for t in kb.techniques(llmeff.TechniqueFilter(requires="npu"))]
    assert main(["--db", str(kb_path), "techniques", "list", "--requires", "npu", "--json"]) == 0
    import json

    assert [row["id"] for row in json.loads(capsys.readouterr().out)] == ids
    assert "npu-shadow-outlier-execution" in ids


def test_import_is_lazy():
    code = "import sys, llmeff; print(sorted(m for m in ('sqlite3', 'sqlmodel', 'pydantic', 'typer') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
