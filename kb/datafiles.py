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
    files = data_files(data_dir) + measurement_files(data_dir)
    # a command opens the database several times: hash the bytes again only when a file changed
    key = (str(data_dir), tuple((str(p), (st := p.stat()).st_mtime_ns, st.st_size) for p in files))
    if _hash_memo.get("key") != key:
        _hash_memo.update(key=key, value=_hash_files(data_dir, files))
    return _hash_memo["value"]


_hash_memo: dict = {}


def _hash_files(data_dir: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(data_dir).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
