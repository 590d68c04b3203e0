"""Completeness of the shipped data: sources everywhere, plugin links accounted for, coverage."""

from __future__ import annotations

from llmeff.kb.load import load_data

SHIPPED = load_data()


def test_counts_meet_the_brief():
    assert len(SHIPPED.techniques) >= 110
    assert len(SHIPPED.hardware) == 51  # ../shared/reference/hardware.yaml
    assert len(SHIPPED.models) == 55  # ../shared/reference/models.yaml


def test_every_row_has_a_source():
    missing = []
    for tid, t in SHIPPED.techniques.items():
        if not (t.papers or t.references):
            missing.append(f"technique {tid}: no paper or reference")
        missing += [f"technique {tid}: result {i} has no source" for i, r in enumerate(t.results) if not r.source.strip()]
        missing += [
            f"technique {tid}: paper {i} cannot be located" for i, p in enumerate(t.papers) if not (p.arxiv or p.venue or p.url_hint)
        ]
    missing += [f"hardware {hid}" for hid, h in SHIPPED.hardware.items() if not h.sources]
    missing += [f"model {mid}" for mid, m in SHIPPED.models.items() if not m.sources]
    missing += [
        f"model {mid}: published size without source"
        for mid, m in SHIPPED.models.items()
        if m.published_params_b and not m.published_params_source
    ]
    assert missing == []


def test_every_modelable_entry_links_a_plugin_or_says_what_captures_it():
    catalogue = {p.id for p in SHIPPED.plugins.plugins}
    unlinked = []
    for tid, t in SHIPPED.techniques.items():
        link = t.cost_model
        if link.modelable == "no":
            continue
        if link.plugin is None and link.captured_by is None:
            unlinked.append(tid)
        elif link.plugin is not None and link.plugin not in catalogue:
            unlinked.append(f"{tid} -> {link.plugin}")
    assert unlinked == []


def test_every_catalogue_plugin_is_referenced():
    referenced = {t.cost_model.plugin for t in SHIPPED.techniques.values()}
    assert [p.id for p in SHIPPED.plugins.plugins if p.id not in referenced] == []


def test_quantitative_results_are_plentiful():
    with_numbers = [tid for tid, t in SHIPPED.techniques.items() if any(r.value is not None for r in t.results)]
    assert len(with_numbers) >= 65  # the fact sheet's 65 entries with a quantitative result


def test_no_peak_is_recorded_as_zero_or_sparse_by_name():
    for hid, h in SHIPPED.hardware.items():
        assert all(v > 0 for v in h.peak_flops_dense.values()), hid


def test_every_reference_resolves_and_every_built_in_is_referenced():
    from llmeff.techniques.registry import plugin_infos

    built_in = {pid for pid, info in plugin_infos().items() if info.distribution == "llmeff"}
    referenced = {t.cost_model.plugin for t in SHIPPED.techniques.values() if t.cost_model.plugin}
    assert referenced <= built_in  # nothing is left planned: every link resolves to an installed plugin
    assert built_in <= referenced
    assert len(built_in) >= 20
