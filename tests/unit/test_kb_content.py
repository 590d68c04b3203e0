"""The knowledge base answers what the surveys and the data files say.

Expected values come from the papers and datasheets (cited inline), not from llmeff's output.
"""

from __future__ import annotations

import pytest

from llmeff.errors import InvalidInputError, UnknownIdError
from llmeff.kb.api import TechniqueFilter


@pytest.fixture()
def kb(store_kb):
    """The knowledge base on each backend: these read queries run on SQLite and on PostgreSQL."""
    return store_kb


def test_awq_entry_carries_paper_path_and_sourced_results(kb):
    awq = kb.technique("weight-only-quant-awq")
    # AWQ: Lin et al., arXiv 2306.00978 (MLSys 2024).
    assert [(p.arxiv, p.first_author) for p in awq.papers] == [("2306.00978", "Ji Lin")]
    assert [c.id for c in awq.path] == ["model-level", "model-compression", "quantization", "quant-weight-only"]
    assert awq.summary.level == "model-level"
    assert awq.results and all(r.source and r.source_kind for r in awq.results)
    assert awq.summary.plugin == "weight-only-quant"


def test_alias_lookup_is_case_insensitive(kb):
    assert kb.technique("awq").summary.id == "weight-only-quant-awq"
    assert kb.technique("FlashAttention").summary.id == "flash-attention"


def test_unknown_technique_suggests_close_ids(kb):
    with pytest.raises(UnknownIdError) as caught:
        kb.technique("flash-atention")
    assert str(caught.value).startswith("unknown technique 'flash-atention'. Did you mean: flash-attention")


def test_relations_are_symmetric(kb):
    # The sheet lists the conflict on one side only (weight-only-quant-awq -> smoothquant-w8a8).
    awq = kb.technique("weight-only-quant-awq")
    assert "smoothquant-w8a8" in {r.id for r in awq.conflicts_with}
    smooth = kb.technique("smoothquant-w8a8")
    assert "weight-only-quant-awq" in {r.id for r in smooth.conflicts_with}


def test_every_survey_leaf_holds_a_technique(kb):
    def leaves(node):
        if not node.children:
            yield node
        for child in node.children:
            yield from leaves(child)

    roots = kb.tree("survey")
    assert [r.category.id for r in roots] == ["data-level", "model-level", "system-level"]
    empty = [leaf.category.id for root in roots for leaf in leaves(root) if not leaf.techniques]
    assert empty == []
    assert sum(r.technique_count() for r in roots) == len(kb.techniques())


def test_mllm_npu_techniques_sit_under_heterogeneous_on_device(kb):
    ids = {t.id for t in kb.techniques(TechniqueFilter(category="heterogeneous-on-device"))}
    assert {"npu-chunk-sharing-prefill", "npu-shadow-outlier-execution", "npu-out-of-order-subgraph"} <= ids
    chunk = kb.technique("npu-chunk-sharing-prefill")
    assert "2407.05858" in {p.arxiv for p in chunk.papers}


def test_unveiled_tree_places_tagged_techniques(kb):
    roots = kb.tree("unveiled")
    placed = sum(r.technique_count() for r in roots)
    tagged = [t for t in kb.techniques() if t.unveiled_category_id]
    assert placed == len(tagged) > 0


def test_filters_compose(kb):
    all_rows = kb.techniques()
    model_level = kb.techniques(TechniqueFilter(level="model-level"))
    assert 0 < len(model_level) < len(all_rows)
    assert all(t.level == "model-level" for t in model_level)
    quant = {t.id for t in kb.techniques(TechniqueFilter(category="quantization"))}
    assert {"weight-only-quant-gptq", "smoothquant-w8a8", "kv-cache-quant-kivi"} <= quant
    not_modelable = kb.techniques(TechniqueFilter(modelable="no"))
    assert not_modelable and all(t.plugin is None and t.modelable == "no" for t in not_modelable)


def test_hardware_filter_follows_datasheet_peaks(kb):
    # The A100 has no FP8 tensor path (NVIDIA A100 datasheet lists none); the H100 SXM does.
    on_a100 = {t.id for t in kb.techniques(TechniqueFilter(runs_on="a100-sxm4-80gb"))}
    on_h100 = {t.id for t in kb.techniques(TechniqueFilter(runs_on="h100-sxm-80gb"))}
    assert "fp8-quantization" not in on_a100
    assert "fp8-quantization" in on_h100
    needs_fp8 = {t.id for t in kb.techniques(TechniqueFilter(requires="fp8-matmul"))}
    assert "fp8-quantization" in needs_fp8


def test_bad_filter_values_are_clear_errors(kb):
    with pytest.raises(InvalidInputError, match="'middle-level' is not one of: data-level"):
        kb.techniques(TechniqueFilter(level="middle-level"))
    with pytest.raises(UnknownIdError, match="unknown category 'quantisation'. Did you mean: quantization"):
        kb.techniques(TechniqueFilter(category="quantisation"))


def test_search_matches_names_mechanisms_and_papers(kb):
    assert kb.search("KIVI")[0].technique.id == "kv-cache-quant-kivi"
    by_arxiv = [h.technique.id for h in kb.search("2205.14135")]  # FlashAttention, Dao et al.
    assert by_arxiv == ["flash-attention"]
    hits = kb.search("speculative draft")
    assert "speculative-decoding" in [h.technique.id for h in hits]
    with pytest.raises(InvalidInputError):
        kb.search("   ")


def test_names_with_quotes_travel_as_parameters(kb):
    # a name is a bound value on both backends, never SQL text: the quote is just a character
    with pytest.raises(UnknownIdError, match=r"unknown technique 'awq'\); DROP TABLE technique; --'"):
        kb.technique("awq'); DROP TABLE technique; --")
    assert len(kb.techniques()) == 129
