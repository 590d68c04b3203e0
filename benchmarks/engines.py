"""Inference engines and device classes: the two groups the calibration's efficiency factors belong to.

Published numbers differ more between engines than between devices (the same model on the same
GPU runs several times faster under TensorRT-LLM than under eager PyTorch), so an efficiency fit
has an engine factor beside the device-class factor. Sources spell engines many ways; a family
is what they share.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache

from llmeff.hardware.specs import HardwareSpec


@dataclass(frozen=True)
class EngineFamily:
    id: str
    name: str
    pattern: str  # a regular expression over the engine as a source writes it (case-insensitive)


ENGINE_FAMILIES = (
    EngineFamily("llama.cpp", "llama.cpp (llama-bench, llama-server)", r"llama\.?cpp|llama-bench|ggml"),
    EngineFamily("tensorrt-llm", "NVIDIA TensorRT-LLM", r"tensorrt|trt-?llm"),
    EngineFamily("qualcomm-qairt", "Qualcomm QNN / Genie (QAIRT SDK)", r"qnn|qairt|genie"),
    EngineFamily("pytorch-eager", "eager PyTorch (Hugging Face transformers, research harnesses)",
                 r"hf transformers|hugging ?face|transformers|pytorch|spec-bench"),
    EngineFamily("tinychat", "MIT TinyChat (AWQ kernels)", r"tinychat"),
    EngineFamily("vllm", "vLLM", r"vllm"),
    EngineFamily("deepspeed", "DeepSpeed-FastGen / DeepSpeed-MII", r"deepspeed"),
    EngineFamily("sglang", "SGLang", r"sglang"),
    EngineFamily("mlc-llm", "MLC LLM", r"mlc"),
)
# What an engine does whether or not a source mentions it: the prediction applies it too, and says so.
ENGINE_DEFAULT_TECHNIQUES: dict[str, tuple[tuple[str, str], ...]] = {
    "tensorrt-llm": (("fused-attention",
                      "TensorRT-LLM builds its engines with context FMHA on: tensorrt_llm/plugin/plugin.py "
                      "PluginConfig._context_fmha default True ('performs the MHA/MQA/GQA block using a single "
                      "kernel'); docs/source/advanced/gpt-attention.md 'Context Phase' (Flash Attention for longer "
                      "sequences)"),),
}
# Engines that batch in flight over a paged KV cache: at steady state the running sequences sit at
# every stage of their generation and hold only the blocks they filled, so memory holds a batch at
# the mean context (prompt + output / 2), not every sequence at its final length.
INFLIGHT_BATCHING_ENGINES = {
    "tensorrt-llm": "TensorRT-LLM docs/source/advanced/gpt-attention.md, 'In-flight Batching' and 'Paged KV Cache'",
    "vllm": "vLLM, arXiv 2309.06180 (iteration-level scheduling over PagedAttention blocks, sections 4.1 and 4.2)",
}
UNNAMED_ENGINE = "unnamed"  # no engine given: the class's factors with no engine correction


def engine_family(engine: str | None) -> str:
    """The family id of an engine as written; unrecognised names are their own family (lower-cased)."""
    if not engine:
        return UNNAMED_ENGINE
    for family in ENGINE_FAMILIES:
        if re.search(family.pattern, engine, flags=re.IGNORECASE):
            return family.id
    return engine.strip().lower()


# Classes of devices with no published efficiency measurement (data/efficiency.toml covers the rest)
KIND_CLASSES = {"npu": "mobile-npu", "cpu": "cpu", "tpu": "tpu", "accelerator": "accelerator"}


def device_class(spec: HardwareSpec) -> str:
    """The device's class in data/efficiency.toml, else one by kind (phone NPU, embedded GPU, CPU, ...)."""
    for class_id, devices in _efficiency_classes().items():
        if spec.id in devices:
            return class_id
    if spec.kind in KIND_CLASSES:
        return KIND_CLASSES[spec.kind]
    if spec.kind == "soc-gpu":
        return "embedded-gpu"
    return f"{spec.vendor}-{spec.kind}"


@lru_cache(maxsize=1)
def _efficiency_classes() -> dict[str, frozenset[str]]:
    from llmeff.kb.datafiles import default_data_dir

    with open(default_data_dir() / "efficiency.toml", "rb") as f:
        data = tomllib.load(f)
    return {c["id"]: frozenset(c["devices"]) for c in data.get("classes", [])}
