"""A command runner over the shared database: run("analyze", ...) -> (exit code, stdout, stderr)."""

from __future__ import annotations

import pytest

from llmeff.cli.app import main


@pytest.fixture()
def llmeff_cli(kb_path, capsys):
    def run(*args: str):
        code = main(["--db", str(kb_path), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
