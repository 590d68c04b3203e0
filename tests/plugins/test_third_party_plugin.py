"""The entry-point door works for outsiders: discovery, use from the CLI, and a clear error on a clash."""

from __future__ import annotations

import json
import sys

import pytest

from llmeff.errors import PluginError
from llmeff.techniques import registry
from llmeff.techniques.checks import check_technique

from .conftest import write_distribution


def test_an_installed_plugin_is_discovered_with_its_distribution(example_plugin_installed):
    info = registry.plugin_infos()["vocab-trim"]
    assert info.distribution == "llmeff-example-plugin"
    assert registry.get_plugin("vocab-trim").summary.startswith("Keep only the LM-head rows")
    assert registry.plugin_infos()["weight-only-quant"].distribution == "llmeff"  # built-ins: same door


def test_it_passes_the_public_conformance_check(example_plugin_installed, kb):
    from llmeff.workload.build import build_workload
    from llmeff.workload.request import WorkloadRequest

    workload = build_workload(kb.model("llama-2-7b").architecture(), WorkloadRequest(batch=2, prompt_tokens=64))
    assert check_technique(registry.get_plugin("vocab-trim"), workload, kb.hardware("a100-sxm4-80gb")) == []


def test_it_runs_from_the_cli(example_plugin_installed, kb_path, capsys):
    from llmeff.cli.app import main

    assert main(["--db", str(kb_path), "techniques", "plugins", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["vocab-trim"]["distribution"] == "llmeff-example-plugin" and rows["vocab-trim"]["status"] == "installed"
    args = ["--db", str(kb_path), "analyze", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--json",
            "--prompt-tokens", "16", "--output-tokens", "2"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(args + ["--technique", "vocab-trim:kept_fraction=0.5"]) == 0
    trimmed = json.loads(capsys.readouterr().out)
    head = lambda result: next(o for o in result["decode"]["operators"] if o["name"] == "lm_head")  # noqa: E731
    assert head(trimmed)["weight_bytes"] == head(plain)["weight_bytes"] / 2 == 32000 * 4096 * 2 / 2
    assert trimmed["techniques"][0]["id"] == "vocab-trim"


def test_two_plugins_claiming_one_id_is_a_clear_error(example_plugin_installed, tmp_path):
    write_distribution(tmp_path / "other", "another-plugin", "vocab-trim = another_plugin:PLUGIN")
    sys.path.insert(0, str(tmp_path / "other"))
    try:
        registry.clear_cache()
        with pytest.raises(PluginError) as caught:
            registry.plugin_infos()
        message = str(caught.value)
        assert message.startswith("two plugins claim the technique id 'vocab-trim'")
        assert "another-plugin" in message and "llmeff-example-plugin" in message
    finally:
        sys.path.remove(str(tmp_path / "other"))


def test_invalid_parameters_name_the_parameter(example_plugin_installed, kb_path, capsys):
    from llmeff.cli.app import main

    code = main(["--db", str(kb_path), "analyze", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb",
                 "--technique", "vocab-trim:kept_fraction=1.5"])
    assert code == 1
    assert capsys.readouterr().err.startswith("Error: field 'kept_fraction': must be in (0, 1], got 1.5")
