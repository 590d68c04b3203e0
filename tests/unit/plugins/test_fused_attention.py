"""Fused attention removes the score-matrix traffic and, in causal prefill, half the score work."""

from __future__ import annotations

import pytest

from llmeff.techniques.builtin.fused_attention import PLUGIN, FusedAttentionParams


def _row(workload, phase, name):
    table = getattr(workload, phase).table
    return table.row(table.index(name))


def test_no_score_round_trip_and_causal_half(workload, device):
    b, s, heads, d = 2, 1024, 32, 128  # Llama-2-7B: 32 heads of 128
    base = workload("llama-2-7b", batch=b, prompt=s)
    fused = PLUGIN.apply(base, device("a100-sxm4-80gb"), FusedAttentionParams())
    row = _row(fused, "prefill", "fused_attention")
    # only Q read and O written (the KV reads stay in the KV column): no B x H x S x S scores
    assert row.activation_bytes_base == b * s * heads * d * 2 * 2
    assert row.kv_bytes_base == 2 * b * s * heads * d * 2  # K and V, MHA, fp16
    square = 2 * b * heads * s * s * d * 2 + 5 * b * heads * s * s  # qk and sv products, softmax
    assert row.flops_base == pytest.approx(square * (s + 1) / (2 * s))
    assert "softmax" not in fused.prefill.table.names and "qk_matmul" not in fused.decode.table.names
    # the softmax over the S x S scores moved the most (2 x 32 x 1024^2 fp16 scores, read and written)
    assert base.memory.activation_bytes == b * heads * s * s * 2 * 2
    # fused, the largest is the gated activation: reads gate and up, writes their product (MLP width 11008)
    assert fused.memory.activation_bytes == 3 * b * s * 11008 * 2


def test_decode_keeps_kv_reads_and_drops_score_bytes(workload, device):
    base = workload("llama-2-7b", batch=4, prompt=2000, output=8)
    fused = PLUGIN.apply(base, device("h100-sxm-80gb"), FusedAttentionParams())
    row = _row(fused, "decode", "fused_attention")
    assert row.kv_bytes_at(2001) == _row(base, "decode", "qk_matmul").kv_bytes_at(2001) * 2  # K and V
    assert row.activation_bytes_per_context == 0  # no score bytes grow with the context


def test_sliding_window_groups_keep_their_caps(workload, device):
    fused = PLUGIN.apply(workload("gemma-2-9b"), device("h100-sxm-80gb"), FusedAttentionParams())
    rows = [fused.decode.table.row(i) for i, n in enumerate(fused.decode.table.names) if n == "fused_attention"]
    assert sorted(r.context_cap for r in rows) == [4096, float("inf")]


def test_refuses_twice(workload, device):
    fused = PLUGIN.apply(workload(), device("h100-sxm-80gb"), FusedAttentionParams())
    assert not PLUGIN.applicability(fused, device("h100-sxm-80gb"), FusedAttentionParams()).ok


def test_after_sparse_attention_the_causal_half_is_not_removed_twice(workload, device):
    from llmeff.techniques.builtin.sparse_attention import PLUGIN as SPARSE
    from llmeff.techniques.pipeline import apply_techniques

    h100 = device("h100-sxm-80gb")
    base = workload("llama-2-7b", prompt=4000, output=8)  # longer than BigBird's keys per query
    sparse = SPARSE.apply(base, h100, SPARSE.Params())
    both = apply_techniques(base, h100, [(PLUGIN, FusedAttentionParams()), (SPARSE, SPARSE.Params())])
    unfused_rows = ("qk_matmul", "softmax", "sv_matmul")
    counted = sum(sparse.prefill.table.row(sparse.prefill.table.index(n)).flops_base for n in unfused_rows)
    assert _row(both, "prefill", "fused_attention").flops_base == pytest.approx(counted)
