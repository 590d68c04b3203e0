"""llmeff: a knowledge base and roofline cost model of efficient LLM inference techniques.

The public API is imported lazily so that ``import llmeff`` (and so the CLI) starts fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "open_kb",
    "KnowledgeBase",
    "TechniqueFilter",
    "Architecture",
    "load_config_file",
    "count_parameters",
    "analyze",
    "AnalysisRequest",
    "WorkloadRequest",
    "plan",
    "PlanRequest",
]


def __getattr__(name: str):
    if name in ("open_kb", "KnowledgeBase", "TechniqueFilter"):
        from llmeff.kb import api

        return getattr(api, name)
    if name in ("load_config_file", "count_parameters", "Architecture"):
        from llmeff import architectures

        return getattr(architectures, name)
    if name in ("analyze", "AnalysisRequest"):
        from llmeff import analysis

        return getattr(analysis, name)
    if name == "plan":
        from llmeff.planner.search import plan

        return plan
    if name == "PlanRequest":
        from llmeff.planner.request import PlanRequest

        return PlanRequest
    if name == "WorkloadRequest":
        from llmeff.workload.request import WorkloadRequest

        return WorkloadRequest
    raise AttributeError(f"module 'llmeff' has no attribute {name!r}")
