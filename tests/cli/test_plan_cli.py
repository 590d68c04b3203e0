"""``llmeff plan`` as a user meets it."""

from __future__ import annotations

import pytest


@pytest.fixture()
def plan(llmeff_cli):
    return lambda *args: llmeff_cli("plan", *args)


def test_the_readme_main_job_recommends_exact_techniques_and_says_why(plan):
    code, out, err = plan("--model", "llama-2-70b", "--hardware", "a100-sxm4-80gb", "--devices", "4", "--batch", "16",
                          "--prompt-tokens", "2048", "--output-tokens", "256", "--max-tpot-ms", "50",
                          "--max-ttft-ms", "6000", "--accuracy-budget", "1.0")
    assert code == 0, err
    # 69B parameters x 2 bytes = 138 GB of fp16 weights: the single-device baseline cannot hold them
    assert "memory: needs" in out and "of 80.0 GB" in out
    assert "#1" in out and "tensor-parallel:degree=4" in out
    assert "Why (the recommendation's settings in full)" in out and "[1909.08053]" in out  # Megatron-LM
    assert "no --accuracy-budget" not in out


def test_without_a_budget_the_output_warns_that_lossy_techniques_may_stack(plan):
    code, out, err = plan("--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--objective", "tpot")
    assert code == 0, err
    assert "Note: no --accuracy-budget was given" in out


def test_nothing_feasible_names_the_binding_constraint(plan):
    # 16 x 2048 prompt tokens x 2 x 69e9 FLOPs / (4 x 312 TFLOP/s) = 3.6 s > 2 s for any exact plan
    code, out, err = plan("--model", "llama-2-70b", "--hardware", "a100-sxm4-80gb", "--devices", "4", "--batch", "16",
                          "--prompt-tokens", "2048", "--output-tokens", "256", "--max-ttft-ms", "2000",
                          "--accuracy-budget", "1.0")
    assert code == 1, err  # the full answer is printed; the exit code tells scripts nothing satisfies
    assert "No plan satisfies the constraints. Binding: TTFT:" in out
    assert "Why (the closest plan's settings in full)" in out


@pytest.mark.parametrize("args, message", [
    (("--objective", "fastest"), "unknown objective 'fastest'"),
    (("--objective", "cost"), "needs a price"),
    (("--devices", "3"), "cannot be split over 3 devices"),
    (("--model", "lama-2-70b"), "Did you mean: llama-2-70b"),
])
def test_bad_input_is_one_line_on_stderr(plan, args, message):
    base = {"--model": "llama-2-70b", "--hardware": "a100-sxm4-80gb"}
    base.update(dict(zip(args[::2], args[1::2])))
    code, out, err = plan(*[x for kv in base.items() for x in kv])
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
