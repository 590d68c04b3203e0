"""Every registered plugin passes the public conformance check on a spread of workloads and devices."""

from __future__ import annotations

import pytest

from llmeff.techniques.checks import check_technique
from llmeff.techniques.registry import load_plugins
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest

CASES = [
    ("llama-2-7b", "a100-sxm4-80gb", 1, 512, 64),  # dense MHA, batch 1
    ("llama-2-70b", "h100-sxm-80gb", 8, 1024, 128),  # GQA, a batch
    ("mixtral-8x7b", "h100-sxm-80gb", 4, 256, 32),  # MoE
    ("gemma-2-9b", "rtx-4090-24gb", 2, 5000, 100),  # sliding windows
    ("deepseek-v2-lite", "h100-sxm-80gb", 2, 256, 16),  # MLA
]


@pytest.fixture(scope="module")
def cases(kb_path):
    from llmeff.kb.api import open_kb

    with open_kb(kb_path) as kb:
        return [
            (build_workload(kb.model(m).architecture(), WorkloadRequest(batch=b, prompt_tokens=s, output_tokens=o),
                            model=m), kb.hardware(h))
            for m, h, b, s, o in CASES
        ]


@pytest.mark.parametrize("plugin_id", sorted(load_plugins()))
def test_plugin_conforms(plugin_id, cases):
    plugin = load_plugins()[plugin_id]
    problems = [p for workload, device in cases for p in check_technique(plugin, workload, device)]
    assert problems == []


def test_at_least_the_built_ins_are_registered():
    assert {"weight-only-quant", "fused-attention"} <= set(load_plugins())
