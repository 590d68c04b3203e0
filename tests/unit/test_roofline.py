"""The roofline cost model against numbers worked out by hand from configs and datasheets."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmeff.errors import InvalidInputError
from llmeff.hardware.specs import Efficiency, HardwareSpec, MissingPeakError
from llmeff.roofline import decode_at, estimate
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest

# Llama-2-7B shapes from meta-llama/Llama-2-7b-hf config.json: 32 layers, hidden 4096, MLP 11008,
# 32 heads of 128, vocab 32000, untied head. Parameters: 6,738,415,616.
LLAMA2_7B_PARAMS = 32 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 32000 * 4096 + 4096

# A device with round numbers: 2.0 TB/s and 300 TFLOP/s fp16 (not a real part).
ROUND_DEVICE = HardwareSpec(
    id="round", name="round", vendor="test", kind="gpu", memory_bandwidth_bytes_per_s=2.0e12,
    memory_capacity_bytes=80 * 10**9, peak_flops_dense={"fp16": 300e12, "int8": 600e12},
)


@pytest.fixture(scope="module")
def models(kb_path):
    from llmeff.kb.api import open_kb

    with open_kb(kb_path) as kb:
        return {m: kb.model(m).architecture() for m in ("llama-2-7b", "llama-2-70b", "mixtral-8x7b", "gemma-2-9b")}


def _decode_flops(workload, context):
    return sum(op.flops_at(context) * op.layers for op in workload.decode.operators)


def test_llama2_7b_weights_and_kv_cache(models):
    w = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=1000, output_tokens=24))
    assert w.memory.weight_bytes == LLAMA2_7B_PARAMS * 2  # about 13.5 GB in fp16
    assert w.memory.weight_bytes == pytest.approx(13.48e9, rel=1e-3)
    # K and V, 32 layers, 4096 values each, 2 bytes: 0.5 MiB per token
    assert w.kv_bytes_per_token == 2 * 32 * 4096 * 2 == 0.5 * 2**20
    assert w.memory.kv_cache_bytes == 1024 * 0.5 * 2**20


def test_llama2_7b_decode_flops_are_twice_the_parameters_plus_attention(models):
    w = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=100, output_tokens=10))
    context = 101
    matmul_params = LLAMA2_7B_PARAMS - 32000 * 4096 - 32 * 2 * 4096 - 4096  # no FLOPs for the embedding, norms
    attention = 32 * 2 * (2 * 32 * 128 * context)  # q.k and p.v over `context` keys, every layer
    linear_flops = 2 * matmul_params + attention
    elementwise = _decode_flops(w, context) - linear_flops
    assert 0 <= elementwise < 0.001 * linear_flops  # norms, softmax, activations, residuals
    assert _decode_flops(w, context) == pytest.approx(2 * 6.74e9, rel=0.03)


def test_batch1_decode_on_a_2tbs_device_is_bound_by_reading_the_weights(models):
    w = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=16, output_tokens=2))
    step = decode_at(w, ROUND_DEVICE, context=17)
    # Every weight but the embedding table (one row per token is gathered) is read once: 13.2 GB over
    # 2.0 TB/s = 6.6 ms; a 17-token KV cache and the activations add little.
    read_once = (LLAMA2_7B_PARAMS - 32000 * 4096) * 2
    assert step.roofline_time_s == pytest.approx(read_once / 2.0e12, rel=0.01)
    assert step.time_s == pytest.approx(6.7e-3, rel=0.02)
    assert all(op.bound == "memory" for op in step.operators)


def test_gqa_kv_cache_is_eight_times_smaller(models):
    llama70 = models["llama-2-70b"]
    request = WorkloadRequest(batch=1, prompt_tokens=128, output_tokens=1)
    gqa = build_workload(llama70, request)
    mha = build_workload(dataclasses.replace(llama70, num_key_value_heads=64), request)
    assert mha.kv_bytes_per_token == 8 * gqa.kv_bytes_per_token
    assert gqa.kv_bytes_per_token == 2 * 80 * 8 * 128 * 2  # K and V, 80 layers, 8 heads of 128, fp16


def test_mixtral_decode_costs_active_experts_and_reads_only_routed_ones(models):
    mixtral = models["mixtral-8x7b"]
    w1 = build_workload(mixtral, WorkloadRequest(batch=1, prompt_tokens=64, output_tokens=2))
    # Mixtral: 46.7B parameters, 12.9B active (mistral.ai, "Mixtral of experts")
    assert w1.memory.weight_bytes == pytest.approx(2 * 46.7e9, rel=0.01)
    embedding = 32000 * 4096
    assert _decode_flops(w1, 65) == pytest.approx(2 * (12.9e9 - embedding), rel=0.03)
    expert_bytes = sum(op.weight_bytes * op.layers for op in w1.decode.operators if op.name.startswith("expert_"))
    one_expert = 3 * 4096 * 14336 * 2 * 32  # gate, up, down, fp16, every layer
    assert expert_bytes == pytest.approx(2 * one_expert)  # batch 1: exactly the 2 routed experts
    w64 = build_workload(mixtral, WorkloadRequest(batch=64, prompt_tokens=64, output_tokens=2))
    big_batch = sum(op.weight_bytes * op.layers for op in w64.decode.operators if op.name.startswith("expert_"))
    assert big_batch == pytest.approx(8 * one_expert, rel=1e-3)  # 64 tokens touch all 8 experts


def test_weight_only_quantization_changes_bytes_not_compute_precision(models):
    fp16 = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=64, output_tokens=2))
    w4 = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=64, output_tokens=2,
                                                              weight_dtype="int4"))
    assert w4.memory.weight_bytes == fp16.memory.weight_bytes / 4
    assert {op.dtype for op in w4.decode.operators} == {"fp16"}  # W4A16 computes in fp16
    assert estimate(w4, ROUND_DEVICE).roof.peak_flops == 300e12


def test_sliding_window_caps_decode_attention_and_the_cache(models):
    gemma2 = models["gemma-2-9b"]  # every other layer has a 4096-token window
    w = build_workload(gemma2, WorkloadRequest(batch=1, prompt_tokens=6000, output_tokens=100))
    windowed = [op for op in w.decode.operators if op.name == "qk_matmul" and op.context_cap == 4096]
    assert windowed and windowed[0].kv_bytes_at(8000) == windowed[0].kv_bytes_at(4096)
    per_token_layer = 2 * 8 * 256 * 2  # K and V, 8 KV heads of 256, fp16
    assert w.memory.kv_cache_bytes == 21 * 6100 * per_token_layer + 21 * 4096 * per_token_layer


@pytest.mark.parametrize(
    ("model", "batch", "prompt", "output"),
    [
        ("llama-2-7b", 16, 300, 40),
        ("llama-2-7b", 256, 64, 900),  # a large batch: decode attention and GEMMs change sides mid-generation
        ("gemma-2-9b", 2, 4000, 200),  # half the layers hit their 4096-token window mid-generation
        ("mixtral-8x7b", 3, 100, 50),
    ],
)
def test_closed_form_decode_equals_the_sum_of_steps(models, model, batch, prompt, output):
    w = build_workload(models[model], WorkloadRequest(batch=batch, prompt_tokens=prompt, output_tokens=output))
    device = dataclasses.replace(ROUND_DEVICE, efficiency=Efficiency(0.7, 0.8, 5e-6, source="test"))
    e = estimate(w, device)
    steps = [decode_at(w, device, c) for c in range(prompt + 1, prompt + output)]
    assert e.tpot_s == pytest.approx(sum(s.time_s for s in steps) / len(steps), rel=1e-9)
    assert e.decode.roofline_time_s == pytest.approx(sum(s.roofline_time_s for s in steps) / len(steps), rel=1e-9)
    assert e.decode.flops == pytest.approx(sum(s.flops for s in steps) / len(steps), rel=1e-9)
    assert e.decode.bytes == pytest.approx(sum(s.bytes for s in steps) / len(steps), rel=1e-9)
    assert e.e2e_latency_s == pytest.approx(e.ttft_s + sum(s.time_s for s in steps), rel=1e-9)


def test_efficiency_terms_slow_things_down_and_the_pure_bound_is_kept(models):
    w = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=128, output_tokens=8))
    ideal = estimate(w, ROUND_DEVICE)
    real = estimate(w, dataclasses.replace(ROUND_DEVICE, efficiency=Efficiency(0.5, 0.5, 1e-5, source="test")))
    assert real.tpot_s > 2 * ideal.tpot_s - 1e-12
    assert real.roofline_tpot_s == pytest.approx(ideal.tpot_s)


def test_missing_peak_is_an_error_naming_it(models):
    w = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=8, output_tokens=2,
                                                             activation_dtype="fp8"))
    with pytest.raises(MissingPeakError, match="hardware 'round' gpu has no published fp8 peak"):
        estimate(w, ROUND_DEVICE)


def test_a_generation_fills_the_context_exactly(models):
    # Llama-2-7B has 4096 positions: a 4096-token prompt yields its first token (which is never fed
    # back), so prompt + output - 1 positions are needed: 4000 + 97 fits, 4000 + 98 does not
    build_workload(models["llama-2-7b"], WorkloadRequest(prompt_tokens=4096, output_tokens=1))
    build_workload(models["llama-2-7b"], WorkloadRequest(prompt_tokens=4000, output_tokens=97))
    with pytest.raises(InvalidInputError, match="exceed the model's context of 4096"):
        build_workload(models["llama-2-7b"], WorkloadRequest(prompt_tokens=4000, output_tokens=98))


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"batch": 0}, "batch", "must be a positive whole number, got 0"),
        ({"prompt_tokens": -5}, "prompt_tokens", "must be a positive whole number, got -5"),
        ({"prompt_tokens": 4000, "output_tokens": 200}, "prompt_tokens", "exceed the model's context of 4096"),
        ({"weight_dtype": "int3"}, "weight_dtype", "unknown precision 'int3'"),
    ],
)
def test_bad_requests_are_one_line_errors(models, change, field, message):
    with pytest.raises(InvalidInputError) as caught:
        build_workload(models["llama-2-7b"], dataclasses.replace(WorkloadRequest(), **change))
    assert caught.value.field == field and message in str(caught.value)
    assert "\n" not in str(caught.value)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 64), prompt=st.integers(1, 2048), factor=st.integers(2, 4))
def test_linear_layer_flops_scale_with_batch(models, batch, prompt, factor):
    arch = models["llama-2-7b"]
    small = build_workload(arch, WorkloadRequest(batch=batch, prompt_tokens=prompt, output_tokens=1))
    large = build_workload(arch, WorkloadRequest(batch=batch * factor, prompt_tokens=prompt, output_tokens=1))
    for a, b in zip(small.prefill.operators, large.prefill.operators):
        if a.kind == "gemm":
            assert b.flops_base == pytest.approx(factor * a.flops_base)
            assert b.weight_bytes == a.weight_bytes  # weights are read once whatever the batch


@settings(max_examples=40, deadline=None)
@given(bandwidth=st.floats(1e11, 1e13), peak=st.floats(1e13, 2e15), more=st.floats(1.01, 10))
def test_time_is_monotone_in_bandwidth_and_peak(models, bandwidth, peak, more):
    w = build_workload(models["llama-2-7b"], WorkloadRequest(batch=4, prompt_tokens=256, output_tokens=16))
    base = dataclasses.replace(ROUND_DEVICE, memory_bandwidth_bytes_per_s=bandwidth, peak_flops_dense={"fp16": peak})
    faster_memory = dataclasses.replace(base, memory_bandwidth_bytes_per_s=bandwidth * more)
    faster_compute = dataclasses.replace(base, peak_flops_dense={"fp16": peak * more})
    reference = estimate(w, base)
    for quicker in (estimate(w, faster_memory), estimate(w, faster_compute)):
        assert quicker.ttft_s <= reference.ttft_s
        assert quicker.tpot_s <= reference.tpot_s


@settings(max_examples=30, deadline=None)
@given(weight=st.sampled_from(["fp16", "fp8", "int8", "int4"]), kv=st.sampled_from(["fp16", "fp8", "int8", "int4"]))
def test_quantizing_never_adds_bytes(models, weight, kv):
    arch = models["mixtral-8x7b"]
    request = WorkloadRequest(batch=2, prompt_tokens=128, output_tokens=4)
    base = build_workload(arch, request)
    quantized = build_workload(arch, dataclasses.replace(request, weight_dtype=weight, kv_dtype=kv))
    for phase in ("prefill", "decode"):
        for a, b in zip(getattr(base, phase).operators, getattr(quantized, phase).operators):
            assert b.bytes_at(129) <= a.bytes_at(129)
    assert quantized.memory.total_bytes <= base.memory.total_bytes


# llama-bench measurements of LLaMA 3 8B with F16 weights, single sequence (XiongjieDai/GPU-Benchmarks-on-
# LLM-Inference README @aa72e0e, 'LLaMA 3' tables; shipped in shared/calibration/measurements.csv):
# (hardware, prompt tokens/s at pp 512, generated tokens/s at tg 512)
LLAMA_BENCH_F16 = [("rtx-4090-24gb", 9382.00, 54.84), ("apple-m3-max", 769.84, 22.04)]


@pytest.mark.parametrize(("hardware", "pp512", "tg512"), LLAMA_BENCH_F16)
def test_estimates_land_near_published_llama_bench_results(kb, hardware, pp512, tg512):
    """With the cited efficiency defaults, prefill and decode speed within 25% of the measurement."""
    arch = kb.model("llama-3-8b").architecture()
    device = kb.hardware(hardware)
    prefill = estimate(build_workload(arch, WorkloadRequest(batch=1, prompt_tokens=512, output_tokens=1)), device)
    decode = decode_at(build_workload(arch, WorkloadRequest(batch=1, prompt_tokens=1, output_tokens=512)), device, 256)
    assert 512 / prefill.ttft_s == pytest.approx(pp512, rel=0.25)
    assert 1 / decode.time_s == pytest.approx(tg512, rel=0.25)


def test_every_device_in_the_registry_analyzes_or_names_the_missing_peak(kb):
    """GPUs, CPUs, Apple silicon, TPUs, NPUs: each runs with a precision it publishes a peak for."""
    arch = kb.model("tinyllama-1.1b").architecture()
    workload_for = {}
    analyzed, refused = [], []
    for spec in kb.hardware_list():
        processor = spec.default_processor()
        peaks = spec.processors()[processor].peaks
        dtype = next((d for d in ("fp16", "bf16", "int8", "fp32") if d in peaks), None)
        if dtype is None:
            with pytest.raises(MissingPeakError, match=f"hardware '{spec.id}' {processor} has no published fp16 peak"):
                estimate(build_workload(arch, WorkloadRequest(batch=1, prompt_tokens=64, output_tokens=8)), spec)
            refused.append(spec.id)
            continue
        if dtype not in workload_for:
            workload_for[dtype] = build_workload(arch, WorkloadRequest(batch=1, prompt_tokens=64, output_tokens=8,
                                                                       weight_dtype=dtype, activation_dtype=dtype))
        result = estimate(workload_for[dtype], spec)
        assert result.ttft_s > 0 and result.tpot_s > 0
        analyzed.append(spec.id)
    assert {"xeon-platinum-8480plus", "apple-m2-ultra", "tpu-v5e", "snapdragon-8-gen-3", "h100-sxm-80gb"} <= set(analyzed)
    # no published peak for any precision (see their notes): an error, never a made-up number
    assert set(refused) == {"apple-m4-max", "snapdragon-8-gen-2", "snapdragon-8-elite", "snapdragon-8-elite-gen-5"}


def test_a_memo_reuses_a_phase_only_when_the_same_phase_object_returns(models):
    base = build_workload(models["llama-2-7b"], WorkloadRequest(batch=4, prompt_tokens=512, output_tokens=64))
    memo: dict = {}
    first = estimate(base, ROUND_DEVICE, memo=memo)
    # a rewrite that only changes memory keeps both phase objects: their estimates are reused as they are
    memory_only = dataclasses.replace(base, memory=dataclasses.replace(base.memory, kv_cache_bytes=0.0))
    again = estimate(memory_only, ROUND_DEVICE, memo=memo)
    assert again.prefill is first.prefill and again.decode is first.decode
    assert again.memory.footprint.kv_cache_bytes == 0.0
    # a new phase (half the weight bytes: decode at batch 4 is memory-bound) is estimated afresh, and equals
    # the estimate without a memo
    table = base.decode.table
    halved = dataclasses.replace(base.decode, table=table.replace(weight_bytes=table.weight_bytes / 2))
    cheaper = dataclasses.replace(base, decode=halved)
    fresh = estimate(cheaper, ROUND_DEVICE, memo=memo)
    assert fresh.decode is not first.decode and fresh.prefill is first.prefill
    assert fresh.tpot_s == estimate(cheaper, ROUND_DEVICE).tpot_s < first.tpot_s


def test_a_longer_generation_on_the_same_phases_is_not_served_from_the_memo(models):
    short = build_workload(models["llama-2-7b"], WorkloadRequest(batch=1, prompt_tokens=512, output_tokens=16))
    memo: dict = {}
    estimate(short, ROUND_DEVICE, memo=memo)
    longer = dataclasses.replace(short, output_tokens=1024)  # same phase objects, other decode contexts
    assert estimate(longer, ROUND_DEVICE, memo=memo).tpot_s == estimate(longer, ROUND_DEVICE).tpot_s
