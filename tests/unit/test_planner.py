"""The planner against cases worked out from first principles."""

from __future__ import annotations

import json

import pytest

from llmeff.errors import InvalidInputError
from llmeff.planner.request import PlanRequest
from llmeff.planner.search import plan, plan_to_dict
from llmeff.workload.request import WorkloadRequest


def _plan(kb_path, **kw):
    workload = kw.pop("workload", WorkloadRequest(batch=1, prompt_tokens=512, output_tokens=64))
    return plan(PlanRequest(db=kb_path, workload=workload, **kw))


def _plugins(candidate):
    return {o.plugin_id for o in candidate.options}


def test_70b_in_fp16_does_not_fit_one_80gb_device_so_the_plan_shrinks_or_streams_weights(kb_path):
    # 69B parameters x 2 bytes = 138 GB > 80 GB: without quantization or offloading nothing fits
    result = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", objective="tpot")
    assert result.baseline.violations[0].startswith("memory: needs")
    best = result.recommendation
    assert best is not None and best.estimate.memory.fits
    assert _plugins(best) & {"weight-only-quant", "weight-activation-quant", "offloading", "structured-pruning",
                             "low-rank-factorization"}


def test_under_an_accuracy_budget_only_known_or_exact_choices_are_recommended(kb_path):
    result = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", objective="tpot", accuracy_budget=1.0)
    best = result.recommendation
    assert best is not None and not best.accuracy_unknown  # unknown impacts are never taken as zero
    assert "offloading" in _plugins(best)  # the one exact way to fit 138 GB of weights on an 80 GB device


def test_no_plan_contains_two_conflicting_techniques(kb_path, kb):
    result = _plan(kb_path, hardware="h100-sxm-80gb", model="llama-2-7b", search="exhaustive", max_candidates=400)
    # an option stands for the entries that share its plugin setting; conflicts are between options
    assert result.ranked
    for candidate in result.ranked:
        for a in candidate.options:
            for b in candidate.options:
                if a is not b:
                    for e in a.entries:
                        conflicting = {r.id for r in kb.technique(e).conflicts_with}
                        assert not conflicting & set(b.entries), (e, candidate.label)


def test_devices_force_tensor_parallelism_and_a_bad_split_is_an_error(kb_path):
    result = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=4, accuracy_budget=0.0)
    assert all("tensor-parallel" in _plugins(c) for c in result.ranked)
    with pytest.raises(InvalidInputError, match="cannot be split over 3 devices: degree 3 does not divide the 64"):
        _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective": "speed"}, "unknown objective 'speed'"),
        ({"max_tpot_ms": -1.0}, "field 'max_tpot_ms': must be positive"),
        ({"require": ("flash-attention",), "exclude": ("flash-attention",)}, "is both required and excluded"),
    ],
)
def test_bad_requests_are_one_line_errors(kb_path, change, message):
    with pytest.raises(InvalidInputError, match=message):
        _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-7b", **change)


def test_cli_and_library_give_the_same_json(kb_path, capsys):
    from llmeff.cli.app import main

    args = ["--db", str(kb_path), "plan", "--model", "llama-2-7b", "--hardware", "rtx-4090-24gb", "--batch", "4",
            "--prompt-tokens", "1024", "--output-tokens", "128", "--objective", "tpot", "--json"]
    assert main(args) == 0
    from_cli = json.loads(capsys.readouterr().out)
    from_library = plan_to_dict(_plan(kb_path, hardware="rtx-4090-24gb", model="llama-2-7b", objective="tpot",
                                      workload=WorkloadRequest(batch=4, prompt_tokens=1024, output_tokens=128)))
    from llmeff.serialize import to_jsonable

    assert from_cli["ranked"] == to_jsonable(from_library)["ranked"]
    assert from_cli["recommendation"]["tpot_s"] < from_cli["baseline"]["tpot_s"]


def test_batch1_decode_prefers_weight_only_quantization_over_w8a8(kb_path, kb):
    """Batch-1 decode is memory-bound (about 1 FLOP/byte): 4-bit weights move a quarter of fp16's bytes,
    W8A8 half, and W8A8's faster int8 compute does not matter below the ridge point."""
    from llmeff.planner.options import build_options
    from llmeff.planner.search import _Evaluator
    from llmeff.workload.build import build_workload

    request = PlanRequest(hardware="a100-sxm4-80gb", model="llama-2-7b", objective="tpot", db=kb_path,
                          workload=WorkloadRequest(batch=1, prompt_tokens=512, output_tokens=64))
    device = kb.hardware("a100-sxm4-80gb")
    base = build_workload(kb.model("llama-2-7b").architecture(), request.workload)
    options = {e: o for o in build_options(kb, base, device) for e in o.entries}
    evaluate = _Evaluator(base, device, request)
    awq, w8a8 = evaluate((options["weight-only-quant-awq"],)), evaluate((options["smoothquant-w8a8"],))
    assert awq.estimate.tpot_s < w8a8.estimate.tpot_s < evaluate(()).estimate.tpot_s
    assert evaluate.rank_key(awq) < evaluate.rank_key(w8a8)


def test_phone_ttft_picks_the_npu_path_of_mllm_npu_over_cpu_only_prefill(kb_path):
    """Qwen1.5-1.8B, 1,024-token prompt, Snapdragon 8 Gen 3: fp16 prefill on the CPU (a derived 0.71 TFLOP/s)
    against INT8 GEMMs on the Hexagon NPU (73 TOPS, llm.npu Table 2) with outliers on the CPU; llm.npu reports
    under 1% accuracy loss, inside a 1-point budget."""
    result = _plan(kb_path, hardware="snapdragon-8-gen-3", model="qwen1.5-1.8b", objective="ttft",
                   accuracy_budget=1.0, workload=WorkloadRequest(batch=1, prompt_tokens=1024, output_tokens=64))
    assert result.baseline.estimate.roof.processor == "cpu"
    best = result.recommendation
    assert "npu-outlier-offload" in _plugins(best)
    assert best.estimate.ttft_s < result.baseline.estimate.ttft_s / 5
    why = next(line for line in result.explanation if line.startswith("npu-outlier-offload"))
    assert "GEMM rows run int8 on the NPU" in why and "2407.05858" in why


def test_an_unchecked_third_party_accuracy_report_leaves_the_impact_unknown(kb_path, kb):
    # prompt-pruning-llmlingua's only accuracy_delta result is a third-party post nobody re-checked
    # (LongLLMLingua's "+17.1% at 4x"); it must not let prompt compression spend an accuracy budget
    [result] = [r for r in kb.technique("prompt-pruning-llmlingua").results if r.metric == "accuracy_delta"]
    assert result.source_kind == "third-party"
    free = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=4,
                 workload=WorkloadRequest(batch=16, prompt_tokens=2048, output_tokens=256), objective="ttft")
    compression = [o for c in free.ranked for o in c.options if o.plugin_id == "prompt-compression"]
    assert compression and all(o.accuracy.kind == "unknown" for o in compression)
    budgeted = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=4,
                     workload=WorkloadRequest(batch=16, prompt_tokens=2048, output_tokens=256), objective="ttft",
                     accuracy_budget=1.0)
    assert all("prompt-compression" not in _plugins(c) for c in budgeted.ranked if c.feasible)


def test_a_ttft_no_device_can_reach_is_reported_as_the_binding_constraint(kb_path):
    # batch 16 x 2048 prompt tokens through 69B parameters: 2 x 69e9 x 32768 = 4.5e15 FLOPs; four A100s
    # at 312 TFLOP/s fp16 need at least 3.6 s, so a 2 s TTFT is out of reach for every exact plan
    result = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=4,
                   workload=WorkloadRequest(batch=16, prompt_tokens=2048, output_tokens=256),
                   max_ttft_ms=2000, max_tpot_ms=50, accuracy_budget=1.0)
    assert result.recommendation is None
    assert result.binding.startswith("TTFT:")
    assert result.ranked[0].estimate.ttft_s > 2 * 69e9 * 16 * 2048 / (4 * 312e12)


def test_runners_up_are_not_a_better_plan_plus_techniques_that_change_nothing(kb_path):
    # paged KV changes no figure of a static batch; "#1 + paged-kv" would repeat #1's numbers as #2
    result = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=4, top=5,
                   workload=WorkloadRequest(batch=16, prompt_tokens=2048, output_tokens=256), accuracy_budget=1.0)
    shown = result.ranked
    assert len(shown) == 5
    for i, better in enumerate(shown):
        for worse in shown[i + 1:]:
            same = (better.estimate.ttft_s, better.estimate.tpot_s, better.estimate.memory.footprint.total_bytes) == \
                   (worse.estimate.ttft_s, worse.estimate.tpot_s, worse.estimate.memory.footprint.total_bytes)
            assert not (same and set(better.options) < set(worse.options)), worse.label


def test_a_long_prompt_ttft_plan_takes_fused_attention_and_chunked_prefill(kb_path):
    # Llama-3.1-8B, one 45,000-token prompt on a 24 GB A10. Weights 8.03e9 x 2 B = 16.06 GB; KV cache
    # 45,000 tokens x 32 layers x 2 (K, V) x 8 KV heads x 128 x 2 B = 5.90 GB: 21.96 GB, leaving 2.04 GB.
    # Unfused attention scores alone are 32 heads x 45,000^2 x 2 B = 130 GB per layer, and even fused,
    # the gate and up projections of the whole prompt are 2 x 45,000 x 14,336 x 2 B = 2.58 GB > 2.04 GB:
    # only fused attention plus a prompt split into chunks fits, at no accuracy cost.
    request = dict(hardware="a10-24gb", model="llama-3.1-8b", objective="ttft", accuracy_budget=0.0,
                   workload=WorkloadRequest(batch=1, prompt_tokens=45_000, output_tokens=64))
    best = _plan(kb_path, **request).recommendation
    assert best is not None and {"fused-attention", "chunked-prefill"} <= _plugins(best)
    assert 21.96e9 < best.estimate.memory.footprint.total_bytes <= 24e9
    without_chunks = _plan(kb_path, exclude=("chunked-prefill",), **request)
    assert without_chunks.recommendation is None  # --exclude with a plugin id removes every entry using it


def test_cost_per_token_needs_a_price_and_follows_throughput_on_a_fixed_device_count(kb_path):
    with pytest.raises(InvalidInputError, match="objective 'cost' needs a price"):
        _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-7b", objective="cost")  # the registry has no prices
    workload = WorkloadRequest(batch=16, prompt_tokens=512, output_tokens=128)
    cheap = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=2, workload=workload,
                  objective="cost", price_usd_per_device_hour=2.0, accuracy_budget=0.0)
    fast = _plan(kb_path, hardware="a100-sxm4-80gb", model="llama-2-70b", devices=2, workload=workload,
                 objective="throughput", accuracy_budget=0.0)
    # two devices at $2/h each cost $4/h whatever the plan: the cheapest token is the fastest one
    assert cheap.recommendation.label == fast.recommendation.label
    tokens_per_s = cheap.recommendation.estimate.output_tokens_per_s
    assert cheap.usd_per_million_tokens(cheap.recommendation) == pytest.approx(4.0 / 3600 / tokens_per_s * 1e6)
    assert plan_to_dict(cheap)["recommendation"]["usd_per_million_output_tokens"] == pytest.approx(
        4.0 / 3600 / tokens_per_s * 1e6)
    assert plan_to_dict(fast)["recommendation"]["usd_per_million_output_tokens"] is None


def test_greedy_drops_an_early_pick_that_later_picks_made_unnecessary(kb_path):
    # At 40,000 tokens the A10 holds weights 16.06 GB + KV 5.24 GB; chunked prefill is the first pick that
    # fits, but once fused attention and kernel fusion are in, the whole prompt fits without chunks
    # (the exhaustive search's answer), and chunking only re-reads the weights once per chunk.
    request = dict(hardware="a10-24gb", model="llama-3.1-8b", objective="ttft", accuracy_budget=0.0,
                   workload=WorkloadRequest(batch=1, prompt_tokens=40_000, output_tokens=64))
    greedy = _plan(kb_path, **request).recommendation
    exhaustive = _plan(kb_path, search="exhaustive", **request).recommendation
    assert _plugins(greedy) == _plugins(exhaustive) == {"fused-attention", "kernel-fusion"}
    assert greedy.estimate.memory.footprint.total_bytes <= 24e9
