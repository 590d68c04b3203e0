"""Speculative decoding: a draft proposes k tokens, one wider target pass verifies them.

Tokens per step (``Workload.decode_tokens_per_step``): with acceptance rate a and draft length k,
(1 - a^(k+1)) / (1 - a) (Leviathan et al., arXiv 2211.17192, section 3, "Number of Generated
Tokens"); or ``mean_accepted`` tau directly, as tree methods (Medusa, EAGLE, SpecInfer) report it.

The verification pass processes n = ``verify_tokens`` tokens per sequence (k + 1 for a chain, the
tree size for a token tree): GEMM FLOPs and activations x n, weights read once (an MoE layer reads
the experts B x n tokens reach), the KV cache read once (plus the n - 1 new keys), attention x n
queries; the i-th verified token also attends to the i earlier ones (n(n-1)/2 extra scores per
head and layer, as for a chain: a tree's tokens see only their ancestors, fewer). The unverified
tokens take n - 1 KV slots per sequence.

Draft cost, by ``drafter``:
- ``model``: a separate draft model whose every per-token cost is ``draft_cost_fraction`` phi of
  the target's (a proportionally smaller model: phi ~ its weight bytes over the target's in
  bandwidth-bound decode). Per step it runs k decode passes (k x phi x every target decode row);
  it prefills the prompt (phi x prefill) and holds phi of the weights and of the KV cache.
- ``heads`` (Medusa-1, arXiv 2401.10774): k heads, each a residual block (hidden x hidden linear
  with bias, SiLU) and its own hidden x vocab LM head (FasterDecoding/Medusa medusa_model.py),
  applied to every verified position as the reference forward does, and to the last prompt
  position after prefill. Head weights take the target's weight precision (16-bit when
  another plugin has already relabelled the target's weights as quantized).
- ``none``: the draft costs nothing on the device (n-gram lookahead, retrieval from a datastore).

Does not model: quality (the output distribution is unchanged for exact verification); the draft
model's own kernel launches (counted as the target's, k times); rejection sampling itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._decode_helpers import (concat, in_range, kind_mask, new_rows, one_of, renamed,
                                                       require, scaled)
from llmeff.techniques.builtin._tables import prefill_activation_peak, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.build import ACT_FLOPS

DRAFTERS = ("model", "heads", "none")
NUMERIC = ("flops_base", "flops_per_context", "weight_bytes", "activation_bytes_base",
           "activation_bytes_per_context", "kv_bytes_base", "kv_bytes_per_context")


@dataclass(frozen=True)
class SpeculativeParams(Params):
    draft_len: int | None = None  # k: tokens drafted per step (heads: number of heads)
    acceptance_rate: float | None = None  # a, per drafted token
    mean_accepted: float | None = None  # tau: tokens per step, instead of the formula
    drafter: str = "model"
    draft_cost_fraction: float | None = None  # model: phi
    verify_tokens: int | None = None  # n per sequence; k + 1 unless a tree is verified

    def validate(self) -> None:
        require(self.draft_len, "draft_len", "the number of tokens drafted per step")
        in_range(self.draft_len, 1, 64, "draft_len")
        one_of(self.drafter, DRAFTERS, "drafter")
        if self.mean_accepted is None:
            require(self.acceptance_rate, "acceptance_rate", "the acceptance rate a (or mean_accepted)")
            if not 0.0 <= self.acceptance_rate < 1.0:
                raise InvalidInputError(f"must be in [0, 1), got {self.acceptance_rate}", field="acceptance_rate")
        elif self.acceptance_rate is not None:
            raise InvalidInputError("give acceptance_rate or mean_accepted, not both", field="mean_accepted")
        else:
            in_range(self.mean_accepted, 1.0, self.draft_len + 1.0, "mean_accepted")
        if self.drafter == "model":
            require(self.draft_cost_fraction, "draft_cost_fraction", "the draft's per-token cost over the target's")
            in_range(self.draft_cost_fraction, 0.0, 1.0, "draft_cost_fraction", low_open=True)
        elif self.draft_cost_fraction is not None:
            raise InvalidInputError("applies to drafter 'model' only", field="draft_cost_fraction")
        if self.verify_tokens is not None:
            in_range(self.verify_tokens, self.draft_len + 1, 4096, "verify_tokens")

    def tokens_per_step(self) -> float:
        if self.mean_accepted is not None:
            return float(self.mean_accepted)
        a, k = self.acceptance_rate, self.draft_len
        return (1.0 - a ** (k + 1)) / (1.0 - a)

    def verified(self) -> int:
        return self.verify_tokens or self.draft_len + 1


def verification(table, n: int, batch: int, arch):
    """One decode step's rows processing ``n`` tokens per sequence instead of one."""
    attention = kind_mask(table, "attention") & np.isinf(table.context_cap)
    extra_keys = n * (n - 1) / 2.0  # token i of the chain also attends to the i before it
    weights = table.weight_bytes.copy()
    for i, name in enumerate(table.names):
        if name == "embedding":  # a gather: one row per token
            weights[i] *= n
        elif name.startswith("expert_") and arch.moe:  # experts reached by B x n tokens, not B
            e, k = arch.moe.num_experts, arch.moe.experts_per_token
            weights[i] *= (1 - (1 - k / e) ** (batch * n)) / (1 - (1 - k / e) ** batch)
    return table.replace(
        flops_base=table.flops_base * n + np.where(attention, table.flops_per_context * extra_keys, 0.0),
        flops_per_context=table.flops_per_context * n, weight_bytes=weights,
        activation_bytes_base=table.activation_bytes_base * n
        + np.where(attention, table.activation_bytes_per_context * extra_keys, 0.0),
        activation_bytes_per_context=table.activation_bytes_per_context * n,
        kv_bytes_base=table.kv_bytes_base * n + np.where(attention, table.kv_bytes_per_context * (n - 1), 0.0))


def medusa_heads(arch, heads: int, tokens: float, weight_bytes: float, act: float) -> list[dict]:
    h, v = arch.hidden_size, arch.vocab_size
    return [
        dict(name="draft_head_resblock", kind="gemm", layers=heads, flops_base=2.0 * tokens * h * h,
             weight_bytes=(h * h + h) * weight_bytes, activation_bytes_base=2.0 * tokens * h * act),
        # SiLU (build.py's ACT_FLOPS for an ungated activation) and the residual add
        dict(name="draft_head_act", kind="elementwise", layers=heads, flops_base=(ACT_FLOPS[False] + 1) * tokens * h,
             activation_bytes_base=3.0 * tokens * h * act),
        dict(name="draft_head_lm", kind="gemm", layers=heads, flops_base=2.0 * tokens * h * v,
             weight_bytes=h * v * weight_bytes, activation_bytes_base=tokens * (h + v) * act),
    ]


class SpeculativeDecoding(BaseTechnique):
    id = "speculative-decoding"
    stage = "system"
    summary = "A draft model or heads propose k tokens; one target pass verifies them: (1-a^(k+1))/(1-a) per step."
    Params = SpeculativeParams

    def param_space(self, workload, hardware):
        # Medusa's defaults: 4 heads, the 63-candidate tree mc_sim_7b_63 plus the root (medusa_model.py);
        # tokens per step at least the speedups reported: 2.2x Medusa-1, 3.6x Medusa-2 (arXiv 2401.10774)
        return tuple(SpeculativeParams(draft_len=4, drafter="heads", verify_tokens=64, mean_accepted=tau)
                     for tau in (2.2, 3.6))

    def applicability(self, workload, hardware, params):
        if workload.decode_tokens_per_step != 1.0:
            return refuse(f"decode already yields {workload.decode_tokens_per_step:g} tokens per step")
        if workload.architecture is None or workload.architecture.ssm:
            return refuse("verifying drafts over a recurrent state needs per-token state snapshots (not modelled)")
        return OK

    def rewrite(self, workload, hardware, params):
        arch, b, k, n = workload.architecture, workload.batch, params.draft_len, params.verified()
        tau = params.tokens_per_step()
        prefill, decode, memory = workload.prefill.table, workload.decode.table, workload.memory
        new_prefill, new_decode = prefill, verification(decode, n, b, arch)
        act = BYTES_PER_ELEMENT[workload.activation_dtype]
        weight = BYTES_PER_ELEMENT.get(workload.weight_dtype, act)
        lines = [f"{tau:.3f} tokens per step" + (f" (a={params.acceptance_rate}, k={k})"
                                                 if params.mean_accepted is None else " (given)"),
                 f"verification processes {n} tokens per sequence: GEMM FLOPs x {n}, weights read once"]
        added_weights = added_kv = 0.0
        if params.drafter == "model":
            phi = params.draft_cost_fraction
            draft = scaled(decode, **{c: phi for c in NUMERIC})
            new_decode = concat(new_decode, renamed(draft.replace(layers=decode.layers * k), "draft_"))
            new_prefill = concat(prefill, renamed(scaled(prefill, **{c: phi for c in NUMERIC}), "draft_"))
            added_weights, added_kv = phi * memory.weight_bytes, phi * memory.kv_cache_bytes
            lines.append(f"draft model: {k} decode passes per step at {phi:g} of the target's cost, "
                         f"and {phi:g} of its prefill, weights and KV")
        elif params.drafter == "heads":
            dtype = workload.activation_dtype
            new_decode = concat(new_decode, new_rows(medusa_heads(arch, k, b * n, weight, act), dtype=dtype))
            new_prefill = concat(prefill, new_rows(medusa_heads(arch, k, b, weight, act), dtype=dtype))
            h, v = arch.hidden_size, arch.vocab_size
            added_weights = k * (h * h + h + h * v) * weight
            lines.append(f"{k} Medusa heads on all {n} verified positions: {added_weights / 1e9:.3f} GB of weights")
        else:
            lines.append("draft tokens come from off-device lookups: no draft cost")
        added_kv += b * (n - 1) * workload.kv_bytes_per_token  # slots of the not-yet-accepted tokens
        memory = replace(memory, weight_bytes=memory.weight_bytes + added_weights,
                         kv_cache_bytes=memory.kv_cache_bytes + added_kv,
                         activation_bytes=prefill_activation_peak(workload, new_prefill))
        new = with_tables(workload, new_prefill, new_decode, memory=memory, decode_tokens_per_step=tau,
                          assumptions=workload.assumptions + (f"speculative decoding: {tau:.3f} tokens per step",))
        new = replace(new, decode=replace(new.decode, tokens=workload.decode.tokens * n))
        return new, lines


PLUGIN = SpeculativeDecoding()
