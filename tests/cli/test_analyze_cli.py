"""``llmeff analyze`` as a user meets it."""

from __future__ import annotations

import json

import pytest


@pytest.fixture()
def analyze(llmeff_cli):
    return lambda *args: llmeff_cli("analyze", *args)


def test_issue_example_runs_and_reports_totals(analyze):
    code, out, err = analyze("--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--batch", "8",
                             "--prompt-tokens", "1024", "--output-tokens", "256")
    assert code == 0, err
    for text in ("time to first token", "time per output token", "ridge point 153.0 FLOP/byte", "q_proj",
                 "gate_proj", "qk_matmul", "fits"):
        assert text in out


def test_json_matches_hand_figures(analyze):
    code, out, _ = analyze("--model", "Llama 2 7B", "--hardware", "A100 80GB", "--json", "--batch", "1",
                           "--prompt-tokens", "16", "--output-tokens", "2")
    assert code == 0
    result = json.loads(out)
    assert result["roof"]["ridge_point_flop_per_byte"] == pytest.approx(312e12 / 2039e9)
    assert result["memory"]["kv_bytes_per_token"] == 2 * 32 * 4096 * 2
    # batch-1 decode reads ~13.2 GB of weights at 2,039 GB/s (A100 80GB datasheet): about 6.5 ms
    assert result["totals"]["roofline_tpot_s"] == pytest.approx(13.2e9 / 2039e9, rel=0.02)
    assert result["processor"] == "gpu" and result["processor_is_default"] is True


def test_does_not_fit_is_a_verdict(analyze):
    code, out, _ = analyze("--model", "llama-2-70b", "--hardware", "a100-sxm4-80gb", "--prompt-tokens", "128")
    assert code == 0
    assert "DOES NOT FIT" in out  # 69B parameters x 2 bytes = 138 GB > 80 GB


def test_config_file_works_like_a_registry_model(analyze, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
    }))
    _, from_registry, _ = analyze("--model", "llama-2-7b", "--hardware", "h100-sxm-80gb", "--json")
    code, from_config, _ = analyze("--config", str(config), "--hardware", "h100-sxm-80gb", "--json")
    assert code == 0
    assert json.loads(from_config)["totals"] == json.loads(from_registry)["totals"]


def test_phone_runs_int8_on_the_npu_and_16_bit_on_the_cpu(analyze):
    code, out, _ = analyze("--model", "qwen1.5-1.8b", "--hardware", "snapdragon-8-gen-3", "--activation-dtype",
                           "int8", "--weight-dtype", "int8", "--prompt-tokens", "1024", "--json")
    assert code == 0
    result = json.loads(out)
    assert (result["processor"], result["roof"]["peak_flops"]) == ("npu", 73e12)  # llm.npu Table 2
    code, out, _ = analyze("--model", "qwen1.5-1.8b", "--hardware", "snapdragon-8-gen-3", "--json")
    result = json.loads(out)
    # the NPU publishes no fp16 rate: fp16 runs on the CPU, whose derived peak is 2 x 355.2 GFLOP/s
    assert (result["processor"], result["roof"]["peak_flops"]) == ("cpu", 710.4e9)
    code, _, err = analyze("--model", "qwen1.5-1.8b", "--hardware", "snapdragon-8-gen-3", "--activation-dtype", "bf16")
    assert code == 1 and err.startswith("Error: hardware 'snapdragon-8-gen-3' npu has no published bf16 peak")


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--batch", "0"],
         "Error: field 'batch': must be a positive whole number, got 0"),
        (["--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--prompt-tokens", "5000"],
         "Error: field 'prompt_tokens': prompt (5000) + output (128) tokens exceed the model's context of 4096 tokens"),
        (["--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--weight-dtype", "int3"],
         "Error: field 'weight_dtype': unknown precision 'int3'"),
        (["--model", "llama-2-7b", "--hardware", "h100-sxm-80gb", "--activation-dtype", "int4"],
         "Error: hardware 'h100-sxm-80gb' gpu has no published int4 peak"),
        (["--model", "lama-2-7b", "--hardware", "a100-sxm4-80gb"], "Error: unknown model 'lama-2-7b'. Did you mean:"),
        (["--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--processor", "npu"],
         "Error: field 'processor': hardware 'a100-sxm4-80gb' has no processor 'npu' (it has: gpu)"),
        (["--hardware", "a100-sxm4-80gb"], "Error: field 'model': give a model id or a config.json path"),
    ],
)
def test_bad_input_is_one_line_exit_1(analyze, args, first_line):
    code, out, err = analyze(*args)
    assert code == 1 and out == ""
    assert err.startswith(first_line)
    assert err.count("\n") == 1


def test_non_numeric_option_is_a_usage_error(analyze):
    code, _, err = analyze("--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--batch", "eight")
    assert code == 2 and "Invalid value" in err


def test_techniques_resolve_by_plugin_alias_or_knowledge_base_entry(analyze):
    base = ["--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--json", "--prompt-tokens", "64"]
    by_plugin = json.loads(analyze(*base, "--technique", "weight-only-quant:bits=4,group_size=128")[1])
    by_entry_alias = json.loads(analyze(*base, "--technique", "AWQ")[1])  # the entry's own bits=4, group_size=128
    assert by_plugin["totals"] == by_entry_alias["totals"]
    assert [t["id"] for t in by_plugin["techniques"]] == ["weight-only-quant"]


@pytest.mark.parametrize(
    ("technique", "first_line"),
    [
        ("moe-ffn", "Error: technique 'moe-ffn' has no cost-model plugin: it is captured by the architecture record"),
        ("knowledge-distillation-white-box", "Error: technique 'knowledge-distillation-white-box' has no cost-model "
                                             "plugin: not a rewrite of the given model"),
        ("weight-only-quant:bits=5", "Error: field 'bits': must be 2, 3, 4 or 8, got 5"),
        ("weight-only-quant:bitz=4", "Error: field 'bitz': unknown parameter 'bitz' (parameters: bits, group_size"),
        ("weight-only-quant:bits", "Error: field 'technique': 'bits' is not name=value"),
        ("no-such-technique", "Error: unknown technique plugin 'no-such-technique'"),
    ],
)
def test_technique_errors_are_one_line(analyze, technique, first_line):
    code, out, err = analyze("--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--technique", technique)
    assert code == 1 and out == ""
    assert err.startswith(first_line) and err.count("\n") == 1


def test_the_issue_example_applies_in_stage_order_and_says_what_changed(analyze):
    args = ["--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--batch", "8", "--prompt-tokens", "1024",
            "--output-tokens", "256"]
    code, out, _ = analyze(*args, "--technique", "weight-quant:bits=4,group=128", "--technique", "flash-attention")
    assert code == 0
    # model stage (weight quantization) before system stage (fused attention), each with its changes
    assert out.index("Technique weight-only-quant") < out.index("Technique fused-attention")
    assert "GEMM weights stored at 4.156 bits per weight" in out  # 4 + (16 + 4) / 128
    assert "causal prefill computes 0.500 of the score square" in out  # (1024 + 1) / 2048
