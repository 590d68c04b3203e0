"""llmeff.benchmarks.labels: a row's precision and technique labels as cost-model plugin specs."""

from __future__ import annotations

import csv
import re

import pytest

from llmeff.benchmarks.labels import Configuration, UnpredictableLabel, configuration_for
from llmeff.benchmarks.records import MeasurementRow, read_measurement_file
from llmeff.errors import InvalidInputError, LlmeffError, UnknownIdError
from llmeff.kb.datafiles import default_data_dir
from llmeff.techniques.builtin.weight_activation_quant import WeightActivationParams
from llmeff.techniques.pipeline import parse_technique

SHIPPED = default_data_dir() / "measurements" / "measurements.csv"
FP8 = "weight-activation-quant:weight_bits=8,activation_bits=8,number_format=fp"
AWQ = "weight-only-quant:bits=4,group_size=128"
Q4_K_M = "weight-only-quant:bits=4,bits_per_weight=4.8944,lm_head=true"  # llama.cpp quantize README, Llama-3.1-8B
SPEC_BENCH = "Spec-Bench harness (PyTorch 2.0.1, per-method reference implementations)"


def row(technique: str | None = None, **fields) -> MeasurementRow:
    values = dict(source_id="test", source_locator="here", model="m", hardware="h", device_count=1,
                  metric="decode_tokens_per_s", value=1.0, unit="tokens/s", weight_dtype="fp16",
                  activation_dtype="fp16", kv_dtype="fp16", technique=technique)
    values.update(fields)
    return MeasurementRow(**values)


def refusal(r: MeasurementRow) -> str:
    with pytest.raises(UnpredictableLabel) as caught:
        configuration_for(r)
    return str(caught.value)


# -- precision ----------------------------------------------------------------------------------------

def test_a_plain_16_bit_row_needs_no_plugin():
    config = configuration_for(row())
    assert config == Configuration("fp16", "fp16", "fp16", (), (), ())
    assert configuration_for(row(weight_dtype="bf16", activation_dtype="bf16", kv_dtype="bf16")).weight_dtype == "bf16"


def test_fp8_w8a8_is_the_fp8_plugin_on_a_16_bit_base():
    config = configuration_for(row("fp8-w8a8", weight_dtype="fp8", activation_dtype="fp8", kv_dtype=None))
    assert (config.weight_dtype, config.activation_dtype, config.kv_dtype) == ("fp16", "fp16", "fp16")
    assert config.techniques == (FP8,)
    assert config.labels == ("fp8-w8a8",)
    assert "KV-cache precision not stated: fp16 assumed" in config.assumptions
    _, params = parse_technique(FP8)
    assert params.compute_dtype == "fp8"  # the GEMMs take the fp8 peak


def test_an_fp8_kv_cache_rides_on_the_fp8_plugin_once():
    by_label = configuration_for(row("fp8-w8a8;kv-fp8", weight_dtype="fp8", activation_dtype="fp8", kv_dtype="fp8"))
    by_dtype = configuration_for(row("fp8-w8a8", weight_dtype="fp8", activation_dtype="fp8", kv_dtype="fp8"))
    assert by_label.techniques == by_dtype.techniques == (FP8 + ",kv_bits=8",)
    assert by_label.kv_dtype == "fp16"  # the plugin quantizes it, not the base workload
    _, params = parse_technique(by_label.techniques[0])
    assert params.kv_bits == 8 and params.number_format == "fp"


def test_an_fp8_kv_cache_alone_is_kv_cache_quant_in_fp8():
    config = configuration_for(row("kv-fp8"))
    assert config.techniques == ("kv-cache-quant:bits=8,group_size=0,zero_point=false,residual_tokens=0,"
                                 "number_format=fp",)
    _, params = parse_technique(config.techniques[0])
    assert params.bits_per_element() == 8  # one scale per tensor: no per-element overhead


def test_fp4_w4a4_is_refused_because_no_plugin_setting_computes_in_fp4():
    message = refusal(row("fp4-w4a4", weight_dtype="fp4", activation_dtype="fp4"))
    assert message.startswith("fp4-w4a4 (FP4 weights and activations) cannot be expressed")
    # the reason holds: fp is FP8 only, and 4-bit activations compute in int4
    with pytest.raises(InvalidInputError, match="'fp' is FP8"):
        WeightActivationParams(weight_bits=4, activation_bits=4, number_format="fp")
    assert WeightActivationParams(weight_bits=4, activation_bits=4).compute_dtype == "int4"
    assert "fp4" in refusal(row(None, weight_dtype="fp4", activation_dtype="fp4"))  # the dtypes alone, too


def test_awq_int4_is_weight_only_4_bit_in_groups_of_128():
    config = configuration_for(row("weight-only-int4-awq", weight_dtype="int4"))
    assert config.techniques == (AWQ,)
    assert any("--q_group_size 128" in a for a in config.assumptions)
    _, params = parse_technique(AWQ)
    assert params.stored_bits_per_weight() == 4 + (16 + 4) / 128  # an fp16 scale and a 4-bit zero point per group


def test_qualcomm_w4_with_a_few_w8_layers_says_it_undercounts():
    config = configuration_for(row("weight-only-int4", weight_dtype="int4 (w4; a few layers w8)", kv_dtype=None))
    assert config.techniques == (AWQ,)
    assert any("few 8-bit layers" in a and "undercounted" in a for a in config.assumptions)


def test_int4_weights_without_a_label_come_from_the_dtypes():
    config = configuration_for(row(None, weight_dtype="int4"))
    assert config.techniques == (AWQ,)
    assert any(a.startswith("no quantization label") for a in config.assumptions)


def test_int16_activations_run_as_16_bit_compute_with_4_bit_weights():
    config = configuration_for(row("weight-int4-act-int16", weight_dtype="int4 (w4a16; a few layers w8a16)",
                                   activation_dtype="int16", kv_dtype=None))
    assert (config.weight_dtype, config.activation_dtype, config.techniques) == ("fp16", "fp16", (AWQ,))
    assert any(a.startswith("int16 activations modelled as 16-bit") for a in config.assumptions)


def test_q4_k_m_uses_llama_cpps_published_bits_per_weight():
    by_label = configuration_for(row("weight-only-q4_k_m", weight_dtype="q4_k_m", activation_dtype=None))
    by_dtype = configuration_for(row(None, weight_dtype="q4_k_m", activation_dtype=None))
    assert by_label.techniques == by_dtype.techniques == (Q4_K_M,)
    assert any("4.8944 bits per weight" in a and "tools/quantize/README.md" in a for a in by_label.assumptions)
    assert "activation precision not stated: fp16 assumed" in by_label.assumptions
    _, params = parse_technique(Q4_K_M)
    assert params.stored_bits_per_weight() == 4.8944 and params.lm_head


def test_labels_and_dtypes_that_disagree_are_refused():
    assert refusal(row("fp8-w8a8", weight_dtype="int4")).startswith("the labels say fp8 but weight_dtype 'int4'")
    assert "more than one quantization scheme" in refusal(row("fp8-w8a8;weight-only-q4_k_m", weight_dtype=None))
    assert "kv_dtype 'int2'" in refusal(row(kv_dtype="int2"))


def test_unstated_dtypes_default_to_fp16_and_say_so():
    config = configuration_for(row("tensor-parallel", device_count=2, weight_dtype=None, activation_dtype=None,
                                   kv_dtype=None))
    assert (config.weight_dtype, config.activation_dtype, config.kv_dtype) == ("fp16", "fp16", "fp16")
    assert config.assumptions[:3] == ("weight precision not stated: fp16 assumed",
                                      "activation precision not stated: fp16 assumed",
                                      "KV-cache precision not stated: fp16 assumed")


# -- parallelism ------------------------------------------------------------------------------------------

def test_tensor_parallel_takes_the_rows_device_count():
    config = configuration_for(row("fp8-w8a8;moe-ffn;tensor-parallel", device_count=8, weight_dtype="fp8",
                                   activation_dtype="fp8"))
    assert config.techniques == (FP8, "tensor-parallel:degree=8")
    assert config.labels == ("fp8-w8a8", "moe-ffn", "tensor-parallel")  # moe-ffn kept, nothing applied for it
    assert "tensor-parallel on 1 device" in refusal(row("tensor-parallel", device_count=1))


def test_several_devices_without_a_label_are_a_pipeline_for_llama_cpp_else_tensor_parallel():
    layer_split = configuration_for(row("weight-only-q4_k_m", weight_dtype="q4_k_m", device_count=4,
                                        engine="llama.cpp"))
    assert layer_split.techniques == (Q4_K_M, "pipeline-parallel:stages=4,micro_batches=1")
    other = configuration_for(row(None, device_count=2, engine="TensorRT-LLM"))
    assert other.techniques == ("tensor-parallel:degree=2",)
    assert any("no parallelism label" in a for a in other.assumptions)


# -- serving -------------------------------------------------------------------------------------------------

def test_serving_labels_map_to_their_plugins_once():
    assert configuration_for(row("flash-attention")).techniques == ("fused-attention",)
    assert configuration_for(row("chunked-prefill")).techniques == ("chunked-prefill",)
    assert configuration_for(row("paged-attention;paged-kv")).techniques == ("paged-kv",)
    fastgen = configuration_for(row("dynamic-splitfuse;paged-kv;tensor-parallel", device_count=4))
    assert fastgen.techniques == ("tensor-parallel:degree=4", "chunked-prefill", "paged-kv")
    assert any(a.startswith("DeepSpeed-FastGen's Dynamic SplitFuse") for a in fastgen.assumptions)
    assert configuration_for(row("dynamic-splitfuse;chunked-prefill")).techniques == ("chunked-prefill",)


def test_chunked_prefill_is_left_out_when_one_chunk_holds_the_prompt():
    config = configuration_for(row("chunked-prefill", input_tokens=512))
    assert config.techniques == ()
    assert any("holds the whole 512-token prompt" in a for a in config.assumptions)


def test_prefix_reuse_takes_the_history_share_of_the_prompt_from_the_notes():
    notes = "TTFT for a 32-token question with 128 history tokens already in the conversation"
    config = configuration_for(row("weight-only-int4-awq;flash-attention;chunked-prefill;prefix-kv-reuse",
                                   weight_dtype="int4", notes=notes))
    assert config.techniques == (AWQ, "fused-attention", "prefix-caching:hit_ratio=0.8,shared=false")  # 128/160
    assert any("which prefix-caching models" in a for a in config.assumptions)
    stated = configuration_for(row("prefix-kv-reuse", notes="a hit ratio of 0.25 on the shared system prompt"))
    assert stated.techniques == ("prefix-caching:hit_ratio=0.25,shared=false",)
    assert refusal(row("prefix-kv-reuse")).startswith("prefix-kv-reuse: the notes do not say")


# -- speculative decoding ------------------------------------------------------------------------------------

def test_speculation_without_a_measured_acceptance_length_is_refused():
    for label in ("speculative-decoding", "speculative-decoding-ngram;tensor-parallel", "lookahead-decoding"):
        assert "needs the measured acceptance length" in refusal(row(label, device_count=4))


def test_spec_bench_pld_and_medusa_use_the_rows_mean_accepted_tokens():
    pld = configuration_for(row("speculative-decoding-ngram", engine=SPEC_BENCH,
                                notes="method: PLD; #Mean Accepted Tokens per step = 1.74; lengths vary"))
    assert pld.techniques == ("speculative-decoding:drafter=none,draft_len=10,mean_accepted=1.74",)
    medusa = configuration_for(row("speculative-decoding-medusa", engine=SPEC_BENCH,
                                   notes="#Mean Accepted Tokens per step = 2.32"))
    assert medusa.techniques == ("speculative-decoding:drafter=heads,draft_len=4,verify_tokens=64,"
                                 "mean_accepted=2.32",)
    assert parse_technique(medusa.techniques[0])[1].tokens_per_step() == 2.32


def test_other_drafters_or_engines_are_refused_with_the_reason():
    notes = "#Mean Accepted Tokens per step = 3.57"
    assert "one-layer decoder" in refusal(row("speculative-decoding-eagle", engine=SPEC_BENCH, notes=notes))
    assert "Jacobi window" in refusal(row("lookahead-decoding", engine=SPEC_BENCH, notes=notes))
    assert "not the draft length" in refusal(row("speculative-decoding-medusa", engine="vLLM", notes=notes))


def test_an_unknown_label_is_named():
    assert refusal(row("fp8-w8a8;warp-drive")).startswith("unknown technique label 'warp-drive'")


# -- the shipped registry -------------------------------------------------------------------------------------

def _expected_refusals() -> int:
    """Refused rows counted from the raw CSV: FP4 rows, and speculative rows other than Spec-Bench's PLD and Medusa
    rows that state their mean accepted tokens."""
    count = 0
    with SHIPPED.open(encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            labels = raw["technique"].split(";")
            speculative = [x for x in labels if x.startswith("speculative-decoding") or x == "lookahead-decoding"]
            if "fp4-w4a4" in labels or raw["weight_dtype"] == "fp4":
                count += 1
            elif speculative:
                stated = re.search(r"Mean Accepted Tokens per step = [0-9.]+", raw["notes"])
                modelled = speculative[0] in ("speculative-decoding-ngram", "speculative-decoding-medusa")
                count += not (stated and raw["engine"].startswith("Spec-Bench") and modelled)
    return count


def test_every_shipped_row_maps_to_parsable_specs_or_a_label_refusal():
    rows = read_measurement_file(SHIPPED).rows
    refused = 0
    for r in rows:
        try:
            config = configuration_for(r)
        except UnpredictableLabel:
            refused += 1
            continue
        for spec in config.techniques:
            parse_technique(spec)
    assert refused == _expected_refusals() == 44 + 23  # 44 FP4 rows; 31 speculative rows, 8 of them modelled


def test_every_distinct_shipped_configuration_applies_on_an_h100(kb, kb_path):
    from llmeff.analysis import AnalysisRequest, analyze
    from llmeff.workload.request import WorkloadRequest

    chosen: dict[Configuration, str] = {}
    unresolved: set[Configuration] = set()
    for r in read_measurement_file(SHIPPED).rows:
        try:
            config = configuration_for(r)
        except UnpredictableLabel:
            continue
        try:
            chosen.setdefault(config, kb.model(r.model).id)  # the model the row measured
        except UnknownIdError:
            unresolved.add(config)  # a model missing from the registry: another row must cover the configuration
    assert len(chosen) > 20 and unresolved <= chosen.keys()
    for config, model in chosen.items():
        # a 1024-token prompt: long enough for 512-token chunks, within every shipped model's context
        request = WorkloadRequest(batch=1, prompt_tokens=1024, output_tokens=128, weight_dtype=config.weight_dtype,
                                  activation_dtype=config.activation_dtype, kv_dtype=config.kv_dtype)
        try:
            result = analyze(AnalysisRequest(hardware="h100-sxm-80gb", model=model, techniques=config.techniques,
                                             workload=request, db=kb_path))
        except LlmeffError as failed:
            pytest.fail(f"{model} with {config.techniques}: {failed}")
        applied = [a.id for a in result.estimate.workload.applied]
        assert sorted(applied) == sorted(spec.partition(":")[0] for spec in config.techniques)
