"""KV eviction and selection with a fixed token budget (StreamingLLM, H2O, Scissorhands, SnapKV, Quest).

``budget_tokens`` (B) is the number of tokens whose K and V one sequence keeps per layer. Policies:

- ``window`` (StreamingLLM, arXiv 2309.17453): the first ``sink_tokens`` plus the most recent
  tokens. Decode attention reads min(c, B) keys: the rows' context cap becomes B (exact, the
  roofline sums the capped steps in closed form); the KV footprint stops at B tokens.
- ``heavy-hitter`` (H2O 2306.14048, Scissorhands 2305.17118): as ``window`` plus the bookkeeping
  the policy needs, counted from H2O's reference code (FMInference/H2O h2o_hf/utils_real_drop/
  modify_llama.py ``_update_hh_score`` and the top-k in ``__call__``): per decode step and layer,
  each head's probabilities over the kept keys are added to accumulated scores (read probabilities,
  read and write scores) and a top-k pass reads them again: 2 FLOPs and 4 activation-size accesses
  per head and kept key. Prefill sums the S x S probabilities over the queries once.
- ``prompt-only`` (SnapKV 2404.14469): after prefill, B prompt tokens are kept (scored by the last
  ``observation_window`` queries, pooled by ``pooling_kernel``); every generated token is kept.
  Decode keys grow as B + j at step j: that is not ``base + slope x min(c, cap)`` with non-negative
  terms, so the rows are capped at the mean over the generation, B + T/2 (FLOPs and bytes summed
  over the generation are exact; one step at a given context is not). The selection pass (window
  scores, pooling, top-k, gathering the kept K and V) is a prefill row.
- ``query-aware`` (Quest 2406.10774): nothing is evicted (memory unchanged) but each decode step
  reads only B tokens of KV, plus per page of ``page_size`` tokens a min and a max key (the
  metadata) scored against the query (2 products, a max and a sum per channel, then a top-k).

Does not model: quality (reported results carry it); the transient full-prompt KV of one layer
before eviction at prefill; H2O's reference implementation re-gathering the kept cache each step
(an in-place slot replacement avoids it); Quest keeping its first two layers dense (all layers
select here); per-head budgets (PyramidKV-style). Sink tokens are part of the budget: they change
which tokens stay, not how many.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._decode_helpers import (concat, in_range, kind_mask, kv_ratio, new_rows, one_of,
                                                       triples)
from llmeff.techniques.builtin._tables import prefill_activation_peak, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.build import SOFTMAX_FLOPS

POLICIES = ("window", "heavy-hitter", "prompt-only", "query-aware")


@dataclass(frozen=True)
class KvEvictionParams(Params):
    policy: str = "window"
    # StreamingLLM's example: start_size 4 + recent_size 2000 (mit-han-lab/streaming-llm run_streaming_llama.py)
    budget_tokens: int = 2004
    sink_tokens: int = 4  # StreamingLLM keeps four initial tokens (same script's start_size default)
    observation_window: int = 32  # SnapKV's default window_size (snapkv/monkeypatch/snapkv_utils.py)
    pooling_kernel: int = 5  # SnapKV's default kernel_size (same file)
    page_size: int = 16  # Quest's default page size (mit-han-lab/Quest scripts/bench_textgen.py)

    def validate(self) -> None:
        one_of(self.policy, POLICIES, "policy")
        in_range(self.budget_tokens, 1, 10**8, "budget_tokens")
        in_range(self.sink_tokens, 0, self.budget_tokens - 1, "sink_tokens")
        in_range(self.pooling_kernel, 1, 1024, "pooling_kernel")
        in_range(self.observation_window, 1, 10**6, "observation_window")
        in_range(self.page_size, 1, 10**6, "page_size")
        if self.policy == "prompt-only":  # SnapKV asserts capacity > window
            in_range(self.observation_window, 1, self.budget_tokens - 1, "observation_window")
        if self.policy == "query-aware":  # the budget holds at least one page
            in_range(self.page_size, 1, self.budget_tokens, "page_size")


class KvEviction(BaseTechnique):
    id = "kv-eviction"
    stage = "model"
    summary = "Keeps a fixed KV budget (sinks + window, heavy hitters, SnapKV, Quest): decode reads stop growing."
    Params = KvEvictionParams

    def param_space(self, workload, hardware):
        context = workload.prompt_tokens + workload.output_tokens
        return (
            KvEvictionParams(),
            # H2O keeps 20% of the sequence as heavy hitters and recent tokens (arXiv 2306.14048 abstract)
            KvEvictionParams(policy="heavy-hitter", budget_tokens=max(5, context // 5)),
            KvEvictionParams(policy="prompt-only", budget_tokens=2048),  # SnapKV's max_capacity_prompt default
            KvEvictionParams(policy="query-aware", budget_tokens=256),  # Quest bench_textgen.py token_budget
        )

    def applicability(self, workload, hardware, params):
        decode = workload.decode.table
        if not kind_mask(decode, "attention").any():
            return refuse("the model keeps no attention KV cache (a state-space model): nothing to evict")
        if not triples(decode) or not triples(workload.prefill.table):
            return refuse("it rewrites the unfused attention rows: apply it before fused-attention (model stage)")
        s, t, budget = workload.prompt_tokens, workload.output_tokens, params.budget_tokens
        if params.policy == "prompt-only" and s <= budget:
            return refuse(f"the prompt ({s} tokens) fits the budget of {budget}: SnapKV keeps it whole")
        if params.policy != "prompt-only" and s + t <= budget:
            return refuse(f"the context ({s + t} tokens) never exceeds the budget of {budget}: nothing to evict")
        return OK

    def rewrite(self, workload, hardware, params):
        b, s, t, budget = workload.batch, workload.prompt_tokens, workload.output_tokens, params.budget_tokens
        heads = workload.architecture.num_attention_heads
        act = BYTES_PER_ELEMENT[workload.activation_dtype]
        prefill, decode = workload.prefill.table, workload.decode.table
        old_cap = decode.context_cap
        # prompt-only keeps B prompt tokens and every generated one: B + j keys at step j, mean B + T/2
        target = budget + t / 2.0 if params.policy == "prompt-only" else float(budget)
        attention = kind_mask(decode, "attention")
        cap = np.where(attention, np.minimum(old_cap, target), old_cap)
        pre_rows, dec_rows = [], []
        for (qk, sm, sv), (pqk, _, psv) in zip(triples(decode), triples(prefill)):
            layers = decode.layers[qk]
            key_width = decode.flops_per_context[qk] / (2.0 * b * heads)  # qk: 2 x key width FLOPs per head and key
            if params.policy == "heavy-hitter":
                dec_rows.append(dict(name="kv_score_update", kind="elementwise", layers=layers,
                                     flops_per_context=2.0 * b * heads,
                                     activation_bytes_per_context=4.0 * b * heads * act, context_cap=cap[qk]))
                pre_rows.append(dict(name="kv_score_update", kind="elementwise", layers=layers,
                                     flops_base=b * heads * (s * s + s),
                                     activation_bytes_base=b * heads * (s * s + 2.0 * s) * act))
            elif params.policy == "prompt-only":
                w = params.observation_window
                pre_rows.append(dict(
                    name="kv_select", kind="attention", layers=layers,
                    flops_base=b * heads * (w * s * (2.0 * key_width + SOFTMAX_FLOPS + 1.0)
                                            + s * (params.pooling_kernel + 1.0)),
                    activation_bytes_base=b * heads * (w * key_width + 4.0 * w * s + 4.0 * s) * act,
                    # read every prompt key once, then gather the kept K and V (read and write)
                    kv_bytes_base=prefill.kv_bytes_base[pqk]
                    + 2.0 * (prefill.kv_bytes_base[pqk] + prefill.kv_bytes_base[psv]) * budget / s))
            elif params.policy == "query-aware":
                page = params.page_size
                dec_rows.append(dict(name="kv_page_scores", kind="attention", layers=layers,
                                     flops_per_context=b * heads * (4.0 * key_width + 1.0) / page,
                                     kv_bytes_per_context=2.0 * decode.kv_bytes_per_context[qk] / page,
                                     activation_bytes_per_context=2.0 * b * heads * act / page,
                                     context_cap=old_cap[qk]))
        dtype = workload.activation_dtype
        new_prefill = concat(prefill, new_rows(pre_rows, dtype=dtype)) if pre_rows else prefill
        new_decode = decode.replace(context_cap=cap)
        if dec_rows:
            new_decode = concat(new_decode, new_rows(dec_rows, dtype=dtype))
        memory, kv_line = self._memory(workload, params, decode, old_cap)
        memory = replace(memory, activation_bytes=prefill_activation_peak(workload, new_prefill))
        note = f"kv-eviction ({params.policy}): {budget} KV tokens per sequence and layer"
        if params.policy == "prompt-only":
            note += f"; decode attention at its mean over the generation ({target:g} keys)"
        new = with_tables(workload, new_prefill, new_decode, memory=memory,
                          assumptions=workload.assumptions + (note,))
        reads = "reads" if params.policy != "prompt-only" else "reads on average"
        lines = [f"{params.policy}: decode attention {reads} at most {target:g} keys per sequence and layer "
                 f"(was the whole context, up to {s + t - 1})", kv_line]
        if pre_rows or dec_rows:
            lines.append(f"added {len(pre_rows)} prefill and {len(dec_rows)} decode rows "
                         f"({', '.join(sorted({r['name'] for r in pre_rows + dec_rows}))})")
        return new, lines

    @staticmethod
    def _memory(workload, params, decode, old_cap):
        s, t, budget = workload.prompt_tokens, workload.output_tokens, params.budget_tokens
        before = workload.memory.kv_cache_bytes
        old_end = lambda i: min(s + t, old_cap[i])  # noqa: E731
        if params.policy == "query-aware":
            # min and max key per page: twice the key bytes over the page size
            keys = sum(decode.kv_bytes_per_context[qk] * decode.layers[qk] for qk, _, _ in triples(decode))
            both = sum(decode.kv_bytes_per_context[i] * decode.layers[i] for tr in triples(decode) for i in tr)
            after = before * (1.0 + 2.0 * keys / both / params.page_size)
            line = f"KV kept whole; page metadata: footprint {before / 1e9:.3f} GB -> {after / 1e9:.3f} GB"
        else:
            kept = (lambda i: min(old_cap[i], budget + t)) if params.policy == "prompt-only" else (  # noqa: E731
                lambda i: min(s + t, old_cap[i], budget))
            after = before * kv_ratio(decode, kept, old_end)
            line = f"KV footprint {before / 1e9:.3f} GB -> {after / 1e9:.3f} GB"
        return replace(workload.memory, kv_cache_bytes=after), line


PLUGIN = KvEviction()
