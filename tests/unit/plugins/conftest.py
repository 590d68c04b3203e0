"""Workloads and devices the plugin tests share (built from the shipped registries)."""

from __future__ import annotations

import pytest

from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest


@pytest.fixture(scope="session")
def registry(kb_path):
    from llmeff.kb.api import open_kb

    with open_kb(kb_path) as kb:
        models = {m: kb.model(m).architecture() for m in
                  ("llama-2-7b", "llama-2-70b", "mixtral-8x7b", "gemma-2-9b", "deepseek-v2-lite", "qwen1.5-1.8b")}
        devices = {h: kb.hardware(h) for h in
                   ("a100-sxm4-80gb", "h100-sxm-80gb", "v100-sxm2-32gb", "rtx-4090-24gb", "snapdragon-8-gen-3",
                    "xeon-platinum-8480plus")}
    return models, devices


@pytest.fixture(scope="session")
def workload(registry):
    """``workload(model, batch=1, prompt=512, output=128, **dtypes)``, built from the shipped registry."""
    models, _ = registry

    def build(model: str = "llama-2-7b", *, batch: int = 1, prompt: int = 512, output: int = 128, **dtypes):
        return build_workload(models[model], WorkloadRequest(batch=batch, prompt_tokens=prompt,
                                                            output_tokens=output, **dtypes), model=model)

    return build


@pytest.fixture(scope="session")
def device(registry):
    return registry[1].__getitem__


@pytest.fixture(scope="session")
def pcie_unmeasured(device):
    """An RTX 4090 whose PCIe link lists no bandwidth (as entries whose datasheet was not read do)."""
    from dataclasses import replace

    card = device("rtx-4090-24gb")
    return replace(card, host_link=replace(card.host_link, bandwidth_bytes_per_s=None))
