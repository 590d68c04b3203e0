"""Reproducible reports: Markdown, one self-contained HTML page, CSVs and PNG figures, plus a manifest.

``build_report(ReportRequest(...), out)`` compares technique combinations across models and devices;
``write_plan_report(plan_result, out)`` writes a plan's report; ``check_report(folder)`` rebuilds a
folder from its manifest and says whether every byte is the same.
"""

from __future__ import annotations

__all__ = ["ReportRequest", "Combination", "load_spec", "build_report", "write_plan_report", "check_report"]


def __getattr__(name: str):
    if name in ("ReportRequest", "Combination", "load_spec"):
        from llmeff.report import request

        return getattr(request, name)
    if name in ("build_report", "write_plan_report", "check_report"):
        from llmeff.report import build

        return getattr(build, name)
    raise AttributeError(f"module 'llmeff.report' has no attribute {name!r}")
