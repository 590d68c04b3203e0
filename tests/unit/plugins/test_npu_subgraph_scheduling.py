"""Out-of-order subgraphs: the prefill takes its busiest processor's time; needs npu-outlier-offload first."""

from __future__ import annotations

import dataclasses

import pytest

from llmeff.errors import TechniqueNotApplicableError
from llmeff.hardware.specs import Processor
from llmeff.roofline import estimate
from llmeff.techniques.builtin.npu_outlier_offload import PLUGIN as OUTLIERS
from llmeff.techniques.builtin.npu_outlier_offload import NpuOutlierParams
from llmeff.techniques.builtin.npu_subgraph_scheduling import PLUGIN, NpuSubgraphParams
from llmeff.techniques.checks import check_technique
from llmeff.techniques.pipeline import apply_techniques


@pytest.fixture(scope="module")
def phone(registry):
    # test inputs, not data: CPU peaks for the Snapdragon 8 Gen 3, whose shipped entry has none yet
    shipped = registry[1]["snapdragon-8-gen-3"]
    return dataclasses.replace(shipped, extra_processors={"cpu": Processor("cpu", {"fp32": 250e9, "fp16": 500e9})})


def test_prefill_takes_the_busiest_processor(workload, phone):
    split = OUTLIERS.apply(workload("qwen1.5-1.8b", prompt=1024), phone, NpuOutlierParams())
    overlapped = PLUGIN.apply(split, phone, NpuSubgraphParams())
    assert overlapped.prefill.overlap_resources and not overlapped.decode.overlap_resources
    serial = estimate(split, phone, processor="cpu").prefill
    per_resource: dict[str, float] = {}
    for resource, op in zip(split.prefill.table.resources, serial.operators):
        per_resource[resource] = per_resource.get(resource, 0.0) + op.roofline_time_s
    assert set(per_resource) == {"compute", "npu", "cpu"}
    assert estimate(overlapped, phone, processor="cpu").roofline_ttft_s == pytest.approx(max(per_resource.values()))
    assert estimate(overlapped, phone, processor="cpu").roofline_ttft_s < serial.roofline_time_s


def test_refuses_a_single_processor_and_names_the_plugin_to_apply_first(workload, phone):
    reason = PLUGIN.applicability(workload("qwen1.5-1.8b"), phone, NpuSubgraphParams()).reason
    assert reason == ("the prefill runs on one processor only (compute): apply npu-outlier-offload first "
                      "(list it before npu-subgraph-scheduling)")
    base = workload("qwen1.5-1.8b")
    # alone it refuses with the reason; with the outlier split the pipeline orders it second (its `order`)
    with pytest.raises(TechniqueNotApplicableError, match="apply npu-outlier-offload first"):
        apply_techniques(base, phone, [(PLUGIN, NpuSubgraphParams())])
    for given in ([(PLUGIN, NpuSubgraphParams()), (OUTLIERS, NpuOutlierParams())],
                  [(OUTLIERS, NpuOutlierParams()), (PLUGIN, NpuSubgraphParams())]):
        done = apply_techniques(base, phone, given)
        assert [a.id for a in done.applied] == ["npu-outlier-offload", "npu-subgraph-scheduling"]
    assert not OUTLIERS.applicability(done, phone, NpuOutlierParams()).ok  # no outlier split after scheduling


@pytest.mark.parametrize("model", ["qwen1.5-1.8b", "mixtral-8x7b", "deepseek-v2-lite"])
def test_conforms(workload, phone, model):
    base = workload(model, prompt=256, output=16)
    assert check_technique(PLUGIN, base, phone) == []  # a refusal with its reason
    assert check_technique(PLUGIN, OUTLIERS.apply(base, phone, NpuOutlierParams()), phone) == []
