"""Contextual sparsity (Deja Vu, arXiv 2310.17157): each token uses a predicted subset of MLP neurons and heads.

Decode only: a token activates a fraction ``mlp_active`` of the dense MLP's neurons (and, with
``heads_active`` below 1, of the attention heads), chosen by a small predictor from the layer
input. Assumption: the tokens of a decode batch pick their active sets independently and
uniformly, so the B tokens of a step reach an expected union of u = 1 - (1 - a)^B of the units (the
expected-distinct formula of the MoE rows, E (1 - (1 - k/E)^B), divided by E). The sparse kernels
gather the union's weight rows/columns once per step and compute every token over them:
- gate/up/down projections and the activation: FLOPs, weight bytes and the MLP-wide activations
  scale by u_mlp (the hidden-wide input or output is unchanged);
- q_proj (output columns) and o_proj (input rows): by u_heads; attention of a sequence runs only its
  own active heads: qk/softmax/sv FLOPs and score bytes by a_heads, and KV reads by the chance that
  any of a KV head's g query heads is active, 1 - (1 - a_heads)^g. The k/v projections stay dense:
  every head's K and V are cached for later tokens that may select it.
- the predictors, as Deja Vu builds them (FMInference/DejaVu sparse_predictor/main_mlp.py and
  main_att.py: Linear(d, D) then Linear(D, MLP width or heads), D = 1000 by default): one GEMM
  row per kind with 2 (d D + D out) FLOPs per token and their weights read every step, stored in
  the activation precision; their parameters join the resident weights.
Prefill stays dense: the union over a whole prompt, 1 - (1 - a)^(B S), is all but every neuron.

The active fractions are model- and batch-dependent (ReLU OPT models are far sparser than SwiGLU
Llamas), so ``mlp_active`` has no default. Not modelled: Deja Vu's asynchronous look-ahead that
overlaps the predictor with the previous layer, and predictor misses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._compression_helpers import expected_union, gemm_shapes, insert_row
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

ATTENTION_ROWS = ("qk_matmul", "softmax", "sv_matmul")


@dataclass(frozen=True)
class ContextualSparsityParams(Params):
    mlp_active: float | None = None  # fraction of MLP neurons a token uses: required
    heads_active: float = 1.0  # fraction of attention heads a token uses
    predictor_rank: int = 1000  # Deja Vu's predictor width D (FMInference/DejaVu, --D default)

    def validate(self) -> None:
        if self.mlp_active is None:
            raise InvalidInputError("required: the predicted fraction of MLP neurons active per token "
                                    "(model- and batch-dependent), e.g. mlp_active=0.3", field="mlp_active")
        if not 0.0 < self.mlp_active <= 1.0:
            raise InvalidInputError(f"must be a fraction in (0, 1], got {self.mlp_active}", field="mlp_active")
        if not 0.0 < self.heads_active <= 1.0:
            raise InvalidInputError(f"must be a fraction in (0, 1], got {self.heads_active}", field="heads_active")
        if not 0 <= self.predictor_rank <= 65536:
            raise InvalidInputError(f"must be 0 (no predictor cost) to 65536, got {self.predictor_rank}",
                                    field="predictor_rank")


class ContextualSparsity(BaseTechnique):
    id = "contextual-sparsity"
    stage = "model"
    summary = "Deja Vu-style: decode reads and computes only the predicted active MLP neurons and heads (batch union)."
    aliases = ("dejavu",)
    Params = ContextualSparsityParams

    def param_space(self, workload, hardware):
        P = ContextualSparsityParams
        return (P(mlp_active=0.5), P(mlp_active=0.25), P(mlp_active=0.25, heads_active=0.5), P(mlp_active=0.1))

    def applicability(self, workload, hardware, params):
        arch = workload.architecture
        if arch is None or arch.ssm:
            return refuse("contextual sparsity needs a transformer's MLP and attention rows")
        names = workload.decode.table.names
        if params.mlp_active < 1.0 and "up_proj" not in names:
            return refuse("the model has no dense MLP (MoE experts are already sparse)")
        if params.heads_active < 1.0 and (arch.mla or "q_proj" not in names or "o_proj" not in names):
            return refuse("head sparsity needs q_proj/o_proj rows and per-head KV (not MLA)")
        if any(a.id == self.id for a in workload.applied):
            return refuse("contextual sparsity is already applied")
        return OK

    def rewrite(self, workload, hardware, params):
        arch, table = workload.architecture, workload.decode.table
        batch = workload.decode.tokens
        shapes = gemm_shapes(arch)
        u_mlp = expected_union(params.mlp_active, batch)
        a_heads = params.heads_active
        u_heads = expected_union(a_heads, batch)
        group = arch.num_attention_heads // max(1, arch.kv_heads)
        kv_read = expected_union(a_heads, group)
        # per row: (FLOPs and weights, activation bytes, KV bytes) factors
        factors = {"mlp_act": (u_mlp, u_mlp, 1.0)}
        for name, u, wide_out in (("gate_proj", u_mlp, True), ("up_proj", u_mlp, True), ("down_proj", u_mlp, False),
                                  ("q_proj", u_heads, True), ("o_proj", u_heads, False)):  # u is 1 when dense
            if name in shapes:
                k, m = shapes[name]
                narrow, wide = (k, m) if wide_out else (m, k)  # the sparsified side is the MLP/heads width
                factors[name] = (u, (narrow + u * wide) / (k + m), 1.0)
        if a_heads < 1.0:
            factors.update({n: (a_heads, a_heads, kv_read) for n in ATTENTION_ROWS})
        columns = {c: getattr(table, c).copy() for c in ("flops_base", "flops_per_context", "weight_bytes",
                                                        "activation_bytes_base", "activation_bytes_per_context",
                                                        "kv_bytes_base", "kv_bytes_per_context")}
        for i, name in enumerate(table.names):
            if name not in factors:
                continue
            work, act, kv = factors[name]
            for c, f in (("flops_base", work), ("flops_per_context", work), ("weight_bytes", work),
                         ("activation_bytes_base", act), ("activation_bytes_per_context", act),
                         ("kv_bytes_base", kv), ("kv_bytes_per_context", kv)):
                columns[c][i] *= f
        decode = table.replace(**columns)
        added, lines = 0.0, []
        a_bytes = BYTES_PER_ELEMENT[workload.activation_dtype]
        layers = lambda n: float(sum(l for name, l in zip(table.names, table.layers) if name == n))  # noqa: E731
        d, rank = arch.hidden_size, params.predictor_rank
        for name, out, on, count in (("mlp_predictor", arch.intermediate_size or 0, params.mlp_active < 1.0,
                                      layers("up_proj")),
                                     ("head_predictor", arch.num_attention_heads, a_heads < 1.0, layers("q_proj"))):
            if not (on and rank):
                continue
            weights = rank * (d + out)
            decode = insert_row(decode, name, "gemm", workload.activation_dtype, layers=count,
                                flops_base=2.0 * batch * weights, weight_bytes=weights * a_bytes,
                                activation_bytes_base=batch * (d + 2 * rank + out) * a_bytes)
            added += weights * count * a_bytes
            lines.append(f"{name}: {d}x{rank} and {rank}x{out} per layer ({count:.0f} layers), every decode step")
        memory = replace(workload.memory, weight_bytes=workload.memory.weight_bytes + added)
        new = with_tables(workload, workload.prefill.table, decode, memory=memory,
                          assumptions=workload.assumptions + (
                              "contextual sparsity: decode tokens pick active neurons/heads independently",))
        return new, [
            f"decode MLP: {params.mlp_active:.0%} of neurons per token, union over {batch} tokens {u_mlp:.1%} "
            "of the MLP weights and FLOPs" if params.mlp_active < 1.0 else "MLP stays dense",
            (f"decode heads: {a_heads:.0%} per token; q/o projections {u_heads:.1%} (batch union), attention "
             f"FLOPs {a_heads:.0%}, KV reads {kv_read:.1%}" if a_heads < 1.0 else "attention stays dense"),
            f"predictor weights +{added / 1e6:.1f} MB; prefill stays dense",
        ] + lines


PLUGIN = ContextualSparsity()
