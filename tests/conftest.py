"""Shared fixtures: one knowledge base built from the shipped data for the whole session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmeff.kb.datafiles import default_data_dir


@pytest.fixture(scope="session")
def kb_path(tmp_path_factory) -> Path:
    """A database built once from the shipped data/."""
    from llmeff import db

    path = tmp_path_factory.mktemp("kb") / "llmeff.db"
    db.build_database(path)
    return path


@pytest.fixture()
def kb(kb_path):
    from llmeff.kb.api import open_kb

    with open_kb(kb_path) as opened:
        yield opened


@pytest.fixture()
def data_copy(tmp_path) -> Path:
    """A writable copy of the shipped data/ directory, for tests that break it on purpose."""
    target = tmp_path / "data"
    shutil.copytree(default_data_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target
