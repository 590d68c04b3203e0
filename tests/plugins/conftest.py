"""Install the example plugin the way pip would: a .dist-info with its entry point on sys.path."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmeff.techniques import registry

HERE = Path(__file__).parent


def write_distribution(root: Path, name: str, entry_points: str) -> None:
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[llmeff.techniques]\n{entry_points}\n")


@pytest.fixture()
def example_plugin_installed(tmp_path, monkeypatch):
    write_distribution(tmp_path, "llmeff-example-plugin", "vocab-trim = llmeff_example_plugin:PLUGIN")
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.clear_cache()
    yield tmp_path
    registry.clear_cache()
