"""Parallel output decoding (Skeleton-of-Thought, APAR): the answer is decoded as P parallel branches.

The request (batch B, prompt S, output T) becomes, in order:
1. the original prefill (B sequences of S tokens), which yields the first skeleton token;
2. ``skeleton_tokens`` - 1 sequential decode steps at batch B (the outline, or APAR's shared stem),
   as context-free rows at the steps' mean context (exact FLOPs and bytes; exact time while each
   row stays on one side of the roofline over those steps, as decode rows do);
3. the fork: Skeleton-of-Thought sends each point as its own request (arXiv 2307.15337), so the
   B x P branch prompts of S + skeleton tokens are prefilled again; APAR (arXiv 2401.06761) forks
   in place (``shared_prefix``): one decode step at batch B x P starts the branches;
4. ceil(T / P) decode steps at batch B x P: the rebuilt decode phase (contexts from S + skeleton).

Stages 1-3 make the prefill phase (time to the first token of the answer's branches); stage 4 is
the decode phase. The workload becomes B x P sequences of ceil(T / P) output tokens, so output
tokens per second stay B x T over the latency (up to the rounding of T / P). KV footprint: B x P
branch sequences of S + skeleton + T/P tokens each, or with a shared prefix B x (S + skeleton)
once plus the branches' own tokens. Branches still read the shared prefix separately in decode
(no prefix-sharing attention kernel).

Does not model: answer quality, or whether an answer splits into P independent points at all (P
and the skeleton length are question-dependent: SoT's router, APAR's fine-tuned fork tokens); the
point-expansion prompt template's own tokens (count them in ``skeleton_tokens``); unequal branch
lengths (the longest branch sets the time; equal branches assumed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._decode_helpers import concat, folded, in_range, rebuild, renamed, require
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse


@dataclass(frozen=True)
class ParallelOutputParams(Params):
    branches: int | None = None  # P
    skeleton_tokens: int | None = None  # decoded before the fork (outline, or shared stem), at least 1
    shared_prefix: bool = False  # APAR: fork in place; SoT: re-prefill each point's prompt

    def validate(self) -> None:
        require(self.branches, "branches", "the number of parallel branches P")
        in_range(self.branches, 2, 1024, "branches")
        require(self.skeleton_tokens, "skeleton_tokens", "the tokens decoded before the fork (at least 1)")
        in_range(self.skeleton_tokens, 1, 10**6, "skeleton_tokens")


class ParallelOutputDecoding(BaseTechnique):
    id = "parallel-output-decoding"
    stage = "data"
    summary = "Decodes an answer as P parallel branches after a skeleton: fewer sequential steps, a wider batch."
    Params = ParallelOutputParams

    def param_space(self, workload, hardware):
        # SoT's prompt asks for 3~10 points of 3~5 words (arXiv 2307.15337, skeleton template); at one
        # token per word at least, a skeleton of P points is at least 3P tokens
        return tuple(ParallelOutputParams(branches=p, skeleton_tokens=3 * p, shared_prefix=shared)
                     for p in (3, 10) for shared in (False, True))

    def applicability(self, workload, hardware, params):
        if workload.architecture is None:
            return refuse("the workload carries no architecture to rebuild the branches from")
        others = [a.id for a in workload.applied if a.id != "prompt-compression"]
        if others:
            return refuse(f"it rebuilds the decode phase from the architecture, so it must run before {others[0]}")
        if params.branches > workload.output_tokens:
            return refuse(f"{params.branches} branches for {workload.output_tokens} output tokens")
        try:
            self._branches(workload, params)
        except InvalidInputError as error:
            return refuse(f"the branch requests do not fit the model: {error.detail}")
        return OK

    @staticmethod
    def _branches(workload, params):
        return rebuild(workload, batch=workload.batch * params.branches,
                       prompt=workload.prompt_tokens + params.skeleton_tokens,
                       output=math.ceil(workload.output_tokens / params.branches))

    def rewrite(self, workload, hardware, params):
        b, s, t = workload.batch, workload.prompt_tokens, workload.output_tokens
        p, k = params.branches, params.skeleton_tokens
        branch = self._branches(workload, params)
        stages = [workload.prefill.table]
        prefill_tokens = workload.prefill.tokens
        if k > 1:  # steps at contexts S+1 .. S+k-1
            stages.append(renamed(folded(workload.decode.table, s + k / 2.0, k - 1), "skeleton_"))
            prefill_tokens += b * (k - 1)
        if params.shared_prefix:
            stages.append(renamed(folded(branch.decode.table, s + k, 1), "fork_"))
            prefill_tokens += b * p
            # a recurrent state cannot be shared: each branch carries its own
            ssm = workload.architecture.ssm
            kv = branch.memory.kv_cache_bytes if ssm else self._shared_kv(workload, branch, params)
        else:
            stages.append(renamed(branch.prefill.table, "branch_"))
            prefill_tokens += branch.prefill.tokens
            kv = branch.memory.kv_cache_bytes
        prefill = concat(*stages)
        memory = replace(workload.memory, kv_cache_bytes=kv,
                         activation_bytes=max(workload.memory.activation_bytes, branch.memory.activation_bytes))
        new = with_tables(workload, prefill, branch.decode.table, memory=memory, batch=b * p,
                          prompt_tokens=s + k, output_tokens=branch.output_tokens,
                          kv_bytes_per_token=branch.kv_bytes_per_token,
                          assumptions=workload.assumptions + (
                              f"answer decoded as {p} equal branches after {k} skeleton tokens",))
        new = replace(new, prefill=replace(new.prefill, tokens=prefill_tokens),
                      decode=replace(new.decode, tokens=branch.decode.tokens))
        fork = ("fork in place (shared prefix): one decode step at batch {bp}" if params.shared_prefix else
                "each branch prefills its own prompt of {sk} tokens at batch {bp}").format(bp=b * p, sk=s + k)
        return new, [
            f"skeleton: {k} tokens decoded sequentially at batch {b}, then {fork}",
            f"decode: {branch.output_tokens} steps at batch {b * p} instead of {t} at batch {b}",
            f"KV footprint {workload.memory.kv_cache_bytes / 1e9:.3f} GB -> {kv / 1e9:.3f} GB",
        ]

    @staticmethod
    def _shared_kv(workload, branch, params):
        """B prefixes of S + skeleton tokens held once, plus every branch's own tokens."""
        prefix = workload.prompt_tokens + params.skeleton_tokens

        def one(tokens: int) -> float:  # KV of one sequence of ``tokens`` (windowed layers capped)
            return rebuild(workload, batch=1, prompt=tokens - 1, output=1).memory.kv_cache_bytes

        own = one(prefix + branch.output_tokens) - one(prefix)
        return workload.batch * (one(prefix) + params.branches * own)


PLUGIN = ParallelOutputDecoding()
