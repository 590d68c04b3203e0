"""Fewer layers per token: early exit (CALM), SkipDecode, Mixture-of-Depths, layer removal (ShortGPT).

Row ``layers`` counts stay integers; the per-layer rows' cost columns are scaled by the expected
executed fraction instead, which is exact in expectation (every per-layer term is linear in the
number of layers that run it). Embedding, final norm and LM head run once per token regardless.

- ``token-exit`` (CALM, arXiv 2207.07061): a decoded token runs ``layer_fraction`` f of the layers
  on average. Skipped layers still get K and V: CALM copies the exited hidden state upwards and
  later tokens attend to it (the abstract's "attending back to missing hidden representations"),
  so the K/V projections (and the attention-input norm) run at every layer and the KV cache keeps
  its full depth; every other per-layer term x f. Weights x f only at batch 1: a batch waits for
  its deepest token, and without the exit-depth distribution the layers some token still runs are
  unknown, so at batch > 1 every weight is counted as read (an upper bound). Prefill is full depth.
- ``skip-decode`` (SkipDecode, arXiv 2307.02628): the whole batch skips the same lower layers, so
  every per-layer decode term, weights included, scales by f; generated tokens keep KV only in the
  layers they ran (footprint: prompt at full depth + f of the generated tokens' KV). f is the mean
  of a position-dependent schedule: attention reads weigh it uniformly over the generation.
- ``depth-routing`` (Mixture-of-Depths, arXiv 2404.02258): every ``routed_every``-th block lets only
  ``capacity`` c of the tokens through (the paper's best: 12.5% capacity, every 2nd block). In
  routed blocks token-proportional terms scale by c and attention scores (routed queries against
  routed keys) by c^2; prefill still reads every weight; a decode step reads a routed block's
  weights unless all B tokens skip it, 1 - (1 - c)^B with independent routing. A router GEMM
  (hidden -> 1) per routed block is added; the KV footprint of routed blocks scales by c.
- ``remove-layers`` (ShortGPT, arXiv 2403.03853): ``removed_layers`` n of L layers are deleted:
  every per-layer term, both phases, the layer weights and the KV footprint x (L - n) / L. Which
  layers go is not modelled: in models with several layer groups (sliding and global layers,
  dense and MoE layers) the removal is spread over the groups in proportion.

Does not model: quality; CALM's confidence measures (its softmax confidence runs the LM head at
every checked layer); the MoD predictor used for autoregressive sampling (routing is taken as
independent per token with probability c); the top-k sort of the MoD router; MoE blocks under depth routing
are charged the experts a full batch would reach.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._decode_helpers import (concat, in_range, kind_mask, kv_ratio, new_rows, one_of,
                                                       per_layer, prefill_score_bytes, require, triples)
from llmeff.techniques.builtin._tables import prefill_activation_peak, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

MODES = ("token-exit", "skip-decode", "depth-routing", "remove-layers")
COLUMNS = ("flops_base", "flops_per_context", "weight_bytes", "activation_bytes_base",
           "activation_bytes_per_context", "kv_bytes_base", "kv_bytes_per_context")


@dataclass(frozen=True)
class EarlyExitParams(Params):
    mode: str = "token-exit"
    layer_fraction: float | None = None  # token-exit, skip-decode: expected share of layers a token runs
    removed_layers: int | None = None  # remove-layers
    capacity: float = 0.125  # depth-routing: MoD's "12.5% capacity, every 2" (arXiv 2404.02258 isoFLOP figures)
    routed_every: int = 2

    def validate(self) -> None:
        one_of(self.mode, MODES, "mode")
        if self.mode in ("token-exit", "skip-decode"):
            require(self.layer_fraction, "layer_fraction",
                    f"mode {self.mode} needs the expected fraction of layers run")
            in_range(self.layer_fraction, 0.0, 1.0, "layer_fraction", low_open=True)
        elif self.layer_fraction is not None:
            raise InvalidInputError("applies to modes token-exit and skip-decode only", field="layer_fraction")
        if self.mode == "remove-layers":
            require(self.removed_layers, "removed_layers", "mode remove-layers needs the number of layers removed")
            in_range(self.removed_layers, 1, 10**5, "removed_layers")
        elif self.removed_layers is not None:
            raise InvalidInputError("applies to mode remove-layers only", field="removed_layers")
        in_range(self.capacity, 0.0, 1.0, "capacity", low_open=True)
        in_range(self.routed_every, 1, 10**5, "routed_every")


def _factors(table, mask, **columns) -> dict:
    """Column -> per-row factor: the given factor on masked rows, 1 elsewhere."""
    return {c: np.where(mask, f, 1.0) for c, f in columns.items()}


def _apply(table, factors: dict):
    return table.replace(**{c: getattr(table, c) * f for c, f in factors.items()})


class EarlyExit(BaseTechnique):
    id = "early-exit"
    stage = "model"
    summary = "Runs fewer layers per token on average (early exit, layer skipping, depth routing, layer removal)."
    Params = EarlyExitParams

    def param_space(self, workload, hardware):
        layers = workload.architecture.num_layers if workload.architecture else 4
        return (
            EarlyExitParams(mode="token-exit", layer_fraction=1 / 3),  # CALM's "up to 3x" (2207.07061 abstract)
            EarlyExitParams(mode="depth-routing"),
            # ShortGPT: removing about 25% of the layers (arXiv 2403.03853, KB entry's reported result)
            EarlyExitParams(mode="remove-layers", removed_layers=max(1, round(layers / 4))),
        )

    def applicability(self, workload, hardware, params):
        arch = workload.architecture
        if arch is None:
            return refuse("the workload carries no architecture to count layers from")
        if arch.ssm and params.mode != "remove-layers":
            return refuse(f"{params.mode} over a recurrent state would need the skipped layers' state updates")
        if params.mode == "remove-layers" and params.removed_layers >= arch.num_layers:
            return refuse(f"cannot remove {params.removed_layers} of {arch.num_layers} layers")
        if params.mode == "depth-routing":
            if arch.num_layers // params.routed_every < 1:
                return refuse(f"routing every {params.routed_every} blocks routes none of {arch.num_layers}")
            if not triples(workload.prefill.table):
                return refuse("it rewrites the unfused attention rows: apply it before fused-attention (model stage)")
        return OK

    def rewrite(self, workload, hardware, params):
        return getattr(self, "_" + params.mode.replace("-", "_"))(workload, params)

    def _token_exit(self, workload, params):
        f, decode = params.layer_fraction, workload.decode.table
        layer = per_layer(decode)
        writes_kv = layer & kind_mask(decode, "gemm") & (decode.kv_bytes_base > 0)  # k/v projections
        norms = np.array([n == "norms" for n in decode.names])
        scaled = layer & ~writes_kv & ~norms
        weights = f if workload.batch == 1 else 1.0
        norm_share = f + (1.0 - f) / workload.architecture.norms_per_layer  # the attention-input norm still runs
        factors = _factors(decode, scaled, **{c: f for c in COLUMNS})
        factors["weight_bytes"] = np.where(scaled, weights, 1.0)
        for column in ("flops_base", "activation_bytes_base"):
            factors[column] = np.where(norms, norm_share, factors[column])
        new = with_tables(workload, workload.prefill.table, _apply(decode, factors),
                          assumptions=workload.assumptions + (f"early exit: decode runs {f:.3g} of the layers",))
        return new, [f"decode runs {f:.3g} of the layers per token on average; K/V projections and the KV cache "
                     "keep full depth (skipped layers attend back to the copied state)",
                     "weights x %.3g" % weights + ("" if workload.batch == 1 else
                                                   " (batch > 1 waits for its deepest token: all weights read)")]

    def _skip_decode(self, workload, params):
        f, decode = params.layer_fraction, workload.decode.table
        s, t = workload.prompt_tokens, workload.output_tokens
        new_decode = _apply(decode, _factors(decode, per_layer(decode), **{c: f for c in COLUMNS}))
        cap = decode.context_cap
        old = lambda i: min(s + t, cap[i])  # noqa: E731
        ratio = kv_ratio(decode, lambda i: old(i) - (1.0 - f) * min(t, old(i)), old)
        memory = replace(workload.memory, kv_cache_bytes=workload.memory.kv_cache_bytes * ratio)
        new = with_tables(workload, workload.prefill.table, new_decode, memory=memory,
                          assumptions=workload.assumptions + (f"SkipDecode: decode runs {f:.3g} of the layers",))
        return new, [f"every per-layer decode term, weights included, x {f:.3g} (batch-uniform skipping)",
                     f"generated tokens keep KV in the layers they ran: KV footprint x {ratio:.4f}"]

    def _depth_routing(self, workload, params):
        arch, b, s, c = workload.architecture, workload.batch, workload.prompt_tokens, params.capacity
        routed = arch.num_layers // params.routed_every
        rho = routed / arch.num_layers
        tokens, scores = 1 - rho + rho * c, 1 - rho + rho * c * c
        reads = 1 - rho + rho * (1 - (1 - c) ** b)
        prefill, decode = workload.prefill.table, workload.decode.table
        score_bytes = prefill_score_bytes(prefill)
        layer, attention = per_layer(prefill), kind_mask(prefill, "attention")
        new_prefill = prefill.replace(
            flops_base=prefill.flops_base * np.where(layer, np.where(attention, scores, tokens), 1.0),
            activation_bytes_base=np.where(layer, (prefill.activation_bytes_base - score_bytes) * tokens
                                           + score_bytes * scores, prefill.activation_bytes_base),
            kv_bytes_base=prefill.kv_bytes_base * np.where(layer, tokens, 1.0))
        layer = per_layer(decode)
        new_decode = _apply(decode, _factors(
            decode, layer, flops_base=tokens, activation_bytes_base=tokens, kv_bytes_base=tokens,
            flops_per_context=scores, activation_bytes_per_context=scores, kv_bytes_per_context=scores,
            weight_bytes=reads))
        h, act = arch.hidden_size, BYTES_PER_ELEMENT[workload.activation_dtype]

        def router(n):  # hidden -> 1 score per token, kept in 16-bit like the norms
            return dict(name="depth_router", kind="gemm", layers=routed, flops_base=2.0 * n * h,
                        weight_bytes=h * act, activation_bytes_base=n * (h + 1) * act)

        dtype = workload.activation_dtype
        new_prefill = concat(new_prefill, new_rows([router(b * s)], dtype=dtype))
        new_decode = concat(new_decode, new_rows([router(b)], dtype=dtype))
        memory = replace(workload.memory, weight_bytes=workload.memory.weight_bytes + routed * h * act,
                         kv_cache_bytes=workload.memory.kv_cache_bytes * tokens,
                         activation_bytes=prefill_activation_peak(workload, new_prefill))
        new = with_tables(workload, new_prefill, new_decode, memory=memory, assumptions=workload.assumptions + (
            f"Mixture-of-Depths: {routed} routed blocks at capacity {c:g}, routing independent per token",))
        return new, [f"{routed} of {arch.num_layers} blocks routed at capacity {c:g}: token terms x {tokens:.4f}, "
                     f"attention scores x {scores:.4f}",
                     f"decode weight reads x {reads:.4f} (a routed block is read unless all {b} tokens skip it)",
                     f"KV footprint x {tokens:.4f}; router GEMM added per routed block"]

    def _remove_layers(self, workload, params):
        arch, n = workload.architecture, params.removed_layers
        g = (arch.num_layers - n) / arch.num_layers
        tables = []
        for phase in (workload.prefill, workload.decode):
            tables.append(_apply(phase.table, _factors(phase.table, per_layer(phase.table), **{c: g for c in COLUMNS})))
        decode = workload.decode.table
        resident = decode.weight_bytes * decode.layers * per_layer(decode)
        if arch.moe:  # decode reads only the experts its tokens reach: scale back to all of them
            e, k = arch.moe.num_experts, arch.moe.experts_per_token
            touched = e * (1.0 - (1.0 - k / e) ** workload.batch)
            experts = np.array([name.startswith("expert_") for name in decode.names])
            resident = np.where(experts, resident * e / touched, resident)
        removed = float(resident.sum()) * (1.0 - g)
        memory = replace(workload.memory, weight_bytes=workload.memory.weight_bytes - removed,
                         kv_cache_bytes=workload.memory.kv_cache_bytes * g)
        new = with_tables(workload, *tables, memory=memory, assumptions=workload.assumptions + (
            f"{n} of {arch.num_layers} layers removed (spread over the layer groups in proportion)",))
        return new, [f"{n} of {arch.num_layers} layers removed: every per-layer term x {g:.4f} in both phases",
                     f"weights {workload.memory.weight_bytes / 1e9:.3f} GB -> {memory.weight_bytes / 1e9:.3f} GB; "
                     f"KV footprint x {g:.4f}"]


PLUGIN = EarlyExit()
