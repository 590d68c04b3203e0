"""``llmeff db check`` names the file and field of every defect in a data directory."""

from __future__ import annotations

from llmeff.kb.check import cross_check
from llmeff.kb.load import load_data


def _problems(data_dir):
    shipped = load_data(data_dir)
    return [str(p) for p in shipped.problems + cross_check(shipped)]


def test_shipped_data_has_no_problems():
    assert _problems(None) == []


def test_missing_hardware_source_is_named(data_copy):
    path = data_copy / "hardware" / "l4-24gb.toml"
    text = path.read_text()
    start = text.index("sources = [")
    end = text.index("]\n", start) + 2
    path.write_text(text[:start] + text[end:])
    assert _problems(data_copy) == ["data/hardware/l4-24gb.toml: field 'sources': Field required"]


def test_dangling_relation_id_is_named(data_copy):
    path = data_copy / "techniques" / "flash-attention.toml"
    path.write_text(path.read_text().replace("compatible_with = [\n", 'compatible_with = [\n    "flash-attention-9",\n', 1))
    assert _problems(data_copy) == [
        "data/techniques/flash-attention.toml: field 'compatible_with.0': unknown technique 'flash-attention-9'"
    ]


def test_unknown_plugin_is_named(data_copy):
    path = data_copy / "techniques" / "cuda-graphs.toml"
    original = path.read_text()
    path.write_text(original.replace('plugin = "cuda-graphs"', 'plugin = "cuda-graph"'))
    assert _problems(data_copy) == [
        "data/techniques/cuda-graphs.toml: field 'cost_model.plugin': "
        "plugin 'cuda-graph' is not installed (entry-point group llmeff.techniques)"
    ]
    path.write_text(original.replace('plugin = "cuda-graphs"', 'plugin = "cuda-graph"\nplugin_status = "planned"'))
    assert _problems(data_copy) == [
        "data/techniques/cuda-graphs.toml: field 'cost_model.plugin': "
        "plugin 'cuda-graph' is neither installed nor listed in data/plugins.toml"
    ]


def test_result_without_source_is_named(data_copy):
    path = data_copy / "techniques" / "weight-only-quant-awq.toml"
    text = path.read_text()
    path.write_text(text.replace('source = "repo mit-han-lab/llm-awq README, TinyChat demos"\n', "", 1))
    assert _problems(data_copy) == ["data/techniques/weight-only-quant-awq.toml: field 'results.0.source': Field required"]


def test_alias_collision_is_named(data_copy):
    path = data_copy / "techniques" / "weight-only-quant-gptq.toml"
    path.write_text(path.read_text().replace("aliases = [\n", 'aliases = [\n    "awq",\n', 1))
    assert _problems(data_copy) == [
        "data/techniques/weight-only-quant-gptq.toml: field 'aliases.0': alias 'awq' already names technique 'weight-only-quant-awq'"
    ]


def test_file_name_must_match_id(data_copy):
    (data_copy / "techniques" / "cuda-graphs.toml").rename(data_copy / "techniques" / "cuda-graph.toml")
    problems = _problems(data_copy)
    assert problems[0] == "data/techniques/cuda-graph.toml: field 'id': 'cuda-graphs' must equal the file name 'cuda-graph'"


def test_efficiency_class_with_unknown_device_is_named(data_copy):
    path = data_copy / "efficiency.toml"
    path.write_text(path.read_text().replace('devices = ["mi250x-128gb"', 'devices = ["mi250-128gb"'))
    assert _problems(data_copy) == ["data/efficiency.toml: field 'classes.2.devices.0': unknown hardware 'mi250-128gb'"]


def test_a_device_efficiency_overrides_its_class(data_copy, tmp_path):
    from llmeff import db
    from llmeff.kb.api import KnowledgeBase

    path = data_copy / "hardware" / "t4-16gb.toml"
    path.write_text(path.read_text() + '\n[efficiency]\ncompute_fraction = 0.5\nbandwidth_fraction = 0.7\n'
                    'kernel_overhead_s = 3e-6\nsource = "a measurement of this very device"\n')
    target = tmp_path / "kb.db"
    db.ensure_database(target, data_copy)
    with KnowledgeBase(db.connect_read_only(target), target) as kb:
        t4 = kb.hardware("t4-16gb")
    assert (t4.efficiency.compute_fraction, t4.efficiency.source) == (0.5, "a measurement of this very device")


def test_executes_rule_must_name_a_published_rate(data_copy):
    path = data_copy / "hardware" / "core-i9-13900k.toml"
    path.write_text(path.read_text() + '\n[executes.fp16]\nrate = "bf16"\nsource = "a made-up rule for this test"\n')
    assert _problems(data_copy) == [
        "data/hardware/core-i9-13900k.toml: executes.fp16: there is no published bf16 peak to run at"
    ]


def test_entry_plugin_settings_must_parse(data_copy):
    path = data_copy / "techniques" / "weight-only-quant-awq.toml"
    path.write_text(path.read_text().replace("bits = 4\n", "bits = 5\n", 1))
    assert _problems(data_copy) == [
        "data/techniques/weight-only-quant-awq.toml: field 'cost_model.params.bits': must be 2, 3, 4 or 8, got 5"
    ]
