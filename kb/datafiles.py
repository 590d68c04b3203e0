"""Where the shipped data files are, and their content hash (no parsing: the read path uses this)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def default_data_dir() -> Path:
    import llmeff.data

    return Path(llmeff.data.__file__).parent


def data_files(data_dir: Path) -> list[Path]:
    """Every file the knowledge base is built from, in a stable order."""
    return sorted(p for p in data_dir.rglob("*.toml") if p.is_file())


def measurement_files(data_dir: Path) -> list[Path]:
    """The built-in benchmark registry (``data/measurements/*.csv``), in a stable order."""
    return sorted(p for p in (data_dir / "measurements").glob("*.csv") if p.is_file())


def content_hash(data_dir: Path) -> str:
    """SHA-256 over the relative paths and bytes of the data files: the shipped data's identity."""
    digest = hashlib.sha256()
    for path in data_files(data_dir) + measurement_files(data_dir):
        digest.update(path.relative_to(data_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
