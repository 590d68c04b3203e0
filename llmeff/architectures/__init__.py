"""Decoder LLM architectures read from Hugging Face config.json documents, and their size.

Public API (re-exported here): ``Architecture`` (with ``from_hf_config``), ``load_config_file``,
``config_from_model_entry``, ``count_parameters`` and ``ParameterCount``.
"""

from __future__ import annotations

from llmeff.architectures.hf import config_from_model_entry, load_config_file
from llmeff.architectures.model import MLA, SSM, Architecture, MoE
from llmeff.param_count import LayerParameters, ParameterCount, count_parameters

__all__ = [
    "MLA", "SSM", "Architecture", "LayerParameters", "MoE", "ParameterCount", "config_from_model_entry",
    "count_parameters", "load_config_file",
]
