"""The report of a plan: the same plans, front and explanation as llmeff.plan, rebuilt byte for byte."""

from __future__ import annotations

import csv
import io

import pytest

from llmeff.planner.request import PlanRequest
from llmeff.planner.search import plan
from llmeff.report.build import check_report, write_plan_report
from llmeff.report.plan import plan_request_from_dict, plan_request_to_dict
from llmeff.workload.request import WorkloadRequest


@pytest.fixture(scope="module")
def planned(kb_path, tmp_path_factory):
    request = PlanRequest(hardware="a100-sxm4-80gb", model="llama-2-7b", workload=WorkloadRequest(8, 1024, 256),
                          max_tpot_ms=10.0, accuracy_budget=3.0, db=kb_path)
    result = plan(request)
    out = tmp_path_factory.mktemp("plans") / "plan"
    write_plan_report(result, out, db=kb_path)
    return result, out


def _rows(folder, name):
    return list(csv.DictReader(io.StringIO((folder / f"{name}.csv").read_text())))


def test_the_plans_table_is_the_plan(planned):
    result, out = planned
    rows = _rows(out, "plans")
    assert [r["plan"] for r in rows] == ["baseline"] + [f"#{i}" for i in range(1, len(result.ranked) + 1)]
    assert rows[1]["techniques"] == result.recommendation.label
    assert float(rows[1]["tpot_ms"]) == pytest.approx(result.recommendation.estimate.tpot_s * 1e3, rel=1e-5)
    assert float(rows[1]["tpot_ms"]) <= 10.0  # the constraint it was asked to meet
    assert rows[0]["feasible"] == ("true" if result.baseline.feasible else "false")
    assert [r["techniques"] for r in _rows(out, "pareto")] == [c.label for c in result.pareto]


def test_the_report_explains_and_cites(planned):
    result, out = planned
    text = (out / "report.md").read_text()
    for line in result.explanation:
        assert line.replace("|", "\\|") in text
    assert "Recommendation: " + result.recommendation.label in text
    papers = {p for c in result.ranked for o in c.options for p in o.papers}
    choices = (out / "choices.csv").read_text()
    assert papers and all(p in choices for p in papers)
    assert {"pareto.png", "comparison.png", "memory.png", "roofline-a100-sxm4-80gb.png"} <= {p.name for p in
                                                                                            out.iterdir()}


def test_the_request_round_trips_and_the_report_rebuilds_identically(planned, kb_path):
    result, out = planned
    assert plan_request_from_dict(plan_request_to_dict(result.request), db=kb_path) == result.request
    check = check_report(out, db=kb_path)
    assert check.identical, check.differences


def test_an_infeasible_plan_still_reports_the_binding_constraint(kb_path, tmp_path):
    request = PlanRequest(hardware="a100-sxm4-80gb", model="llama-2-7b", workload=WorkloadRequest(8, 1024, 256),
                          max_tpot_ms=0.5, accuracy_budget=0.0, db=kb_path)
    # 0.5 ms per token with exact techniques only: the weights alone take 13.5 GB / 2.039 TB/s = 6.6 ms
    result = plan(request)
    assert result.recommendation is None
    write_plan_report(result, tmp_path / "r", db=kb_path)
    text = (tmp_path / "r" / "report.md").read_text()
    assert f"No plan satisfies the constraints; binding: {result.binding}." in text
