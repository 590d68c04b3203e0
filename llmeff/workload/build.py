"""Build the operator tables of a model for a request: LLM-Viewer's per-operator roofline, typed.

Counting conventions (each is what the baseline kernels compute, so that technique plugins can
rewrite them later):
- A GEMM of ``n`` tokens through an ``a x b`` weight costs ``2 n a b`` FLOPs and reads the weight
  once per forward pass, whatever the batch: that is why small-batch decode is bandwidth-bound.
- Attention is unfused (score matrix written and read back through device memory); causal prefill
  computes the full ``S x S`` square, masked, as unfused kernels do. Fused attention is a plugin.
- Decode attends to ``c`` keys (the context including the new token) and reads the K and V cache
  once each per step; the new token's K and V are written by the k/v projections.
- Only the experts a token is routed to cost FLOPs; an MoE layer reads the weights of every
  expert some token in the batch is routed to (uniform routing: E (1 - (1 - k/E)^n) experts).
- Prefill computes logits for the last position of each sequence only, as serving engines do.
- Rotary embeddings and bias adds are folded into their neighbours (a few FLOPs per element).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from llmeff.architectures import Architecture
from llmeff.param_count import count_parameters
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.workload.operators import MemoryFootprint, Phase, TableBuilder, TableTemplate, Workload
from llmeff.workload.poly import Poly
from llmeff.workload.request import WorkloadRequest

# Elementwise work per element, counted from the arithmetic each kernel does.
NORM_FLOPS = {"rmsnorm": 4, "layernorm": 7}  # square+sum+scale+weight; LayerNorm adds mean, centring, bias
SOFTMAX_FLOPS = 5  # max, subtract, exp, sum, divide
ACT_FLOPS = {True: 6, False: 5}  # gated: activation (~5) and the gate product; plain: activation only
SCAN_FLOPS_PER_STATE = 8  # Mamba: discretise A and B (2 each), update state (2), read out C.h (2)
NORM_WEIGHT_BYTES = 2  # norm scales stay in 16-bit even when the GEMM weights are quantized


def build_workload(arch: Architecture, request: WorkloadRequest, *, model: str = "model") -> Workload:
    """Operators of prefill and of one decode step, and the memory footprint, for ``request``."""
    request = request.validated(max_context=arch.max_position_embeddings)
    kv_dtype = request.kv_dtype or request.activation_dtype
    compiled = _compiled(arch, request.weight_dtype, request.activation_dtype, kv_dtype)
    batch, prompt = request.batch, request.prompt_tokens
    prefill_table, decode_table = compiled.template.evaluate({
        "B": batch, "S": prompt,
        "T": _touched_experts(arch, batch * prompt),  # experts touched by a prefill pass ...
        "U": _touched_experts(arch, batch),  # ... and by a decode step
    })
    weight, kv = BYTES_PER_ELEMENT[request.weight_dtype], BYTES_PER_ELEMENT[kv_dtype]
    memory = MemoryFootprint(
        weight_bytes=compiled.parameters * weight,
        kv_cache_bytes=batch * _kv_bytes_per_sequence(arch, compiled.groups, kv, prompt + request.output_tokens),
        activation_bytes=float((prefill_table.activation_bytes_base
                                + prefill_table.activation_bytes_per_context * prompt).max()),
    )
    assumptions = [
        "attention unfused: the score matrix goes through device memory (fused attention is a plugin)",
        "prefill computes logits for the last position of each sequence only",
    ]
    if arch.is_moe:
        assumptions.append("MoE routing uniform across experts: expected distinct experts per step read from memory")
    return Workload(
        model=model,
        batch=batch,
        prompt_tokens=prompt,
        output_tokens=request.output_tokens,
        weight_dtype=request.weight_dtype,
        activation_dtype=request.activation_dtype,
        kv_dtype=kv_dtype,
        prefill=Phase("prefill", prefill_table, batch * prompt),
        decode=Phase("decode", decode_table, batch),
        memory=memory,
        kv_bytes_per_token=len(arch.attention_layer_indices) * arch.kv_cache_elements_per_token_per_layer * kv,
        assumptions=tuple(assumptions),
        architecture=arch,
    )


class _Compiled(NamedTuple):
    template: TableTemplate  # prefill and decode
    parameters: int
    groups: tuple[dict, ...]


@lru_cache(maxsize=256)
def _compiled(arch: Architecture, weight_dtype: str, activation_dtype: str, kv_dtype: str) -> _Compiled:
    """The prefill and decode tables of ``arch`` with batch B and prompt length S as variables.

    Built once per architecture and precisions (the planner asks for the same model thousands of
    times): a request only substitutes its numbers.
    """
    prefill_sizes = _Sizes(weight_dtype, activation_dtype, kv_dtype, touched="T")
    decode_sizes = _Sizes(weight_dtype, activation_dtype, kv_dtype, touched="U")
    groups = _layer_groups(arch)
    prefill = _table(arch, prefill_sizes, groups, tokens=prefill_sizes.batch * prefill_sizes.prompt, prefill=True)
    decode = _table(arch, decode_sizes, groups, tokens=decode_sizes.batch, prefill=False)
    return _Compiled(
        template=TableTemplate.compile([prefill, decode]),
        parameters=count_parameters(arch).total,
        groups=groups,
    )


def _touched_experts(arch: Architecture, tokens: int) -> float:
    """Expected distinct experts that ``tokens`` token-choices reach (uniform routing); 0 without MoE."""
    if not arch.moe:
        return 0.0
    experts, k = arch.moe.num_experts, arch.moe.experts_per_token
    return experts * (1.0 - (1.0 - k / experts) ** tokens)


class _Sizes:
    """Bytes per element of each kind of tensor; batch, prompt and touched experts as variables."""

    def __init__(self, weight_dtype: str, activation_dtype: str, kv_dtype: str, *, touched: str):
        self.weight = BYTES_PER_ELEMENT[weight_dtype]
        self.act = BYTES_PER_ELEMENT[activation_dtype]
        self.kv = BYTES_PER_ELEMENT[kv_dtype]
        self.dtype = activation_dtype
        self.batch = Poly.var("B")
        self.prompt = Poly.var("S")
        self.touched = Poly.var(touched)  # distinct MoE experts reached: differs between the phases


class _Rows:
    """The builder of one phase's table, with the row shapes this module uses."""

    def __init__(self, s: _Sizes):
        self.s = s
        self.builder = TableBuilder()

    def gemm(self, name: str, n: Poly, k: int, m: int, layers: int, *, bias: bool = False,
             output_to_kv: bool = False, weight_copies: float = 1.0) -> None:
        """``n`` tokens through a ``k x m`` weight; ``weight_copies`` distinct weights are read (MoE experts)."""
        s = self.s
        out = n * m * (s.kv if output_to_kv else s.act)
        self.builder.add(
            name, "gemm", s.dtype, layers=layers, flops=(2.0 * n * k * m, 0.0),
            weight_bytes=weight_copies * (k * m + (m if bias else 0)) * s.weight,
            activation_bytes=(n * k * s.act + (0.0 if output_to_kv else out), 0.0),
            kv_bytes=(out if output_to_kv else 0.0, 0.0),
        )

    def elementwise(self, name: str, kind: str, elements: float, flops_per_element: float, layers: int, *,
                    reads: int = 1, weight_bytes: float = 0.0) -> None:
        self.builder.add(name, kind, self.s.dtype, layers=layers, flops=(flops_per_element * elements, 0.0),
                         weight_bytes=weight_bytes, activation_bytes=((reads + 1) * elements * self.s.act, 0.0))

    def per_head(self, name: str, tokens: Poly, heads: int, k: int, m: int, layers: int) -> None:
        """A per-head ``k x m`` product for every token (MLA's absorbed up-projections)."""
        s = self.s
        self.builder.add(name, "gemm", s.dtype, layers=layers, flops=(2.0 * tokens * heads * k * m, 0.0),
                         weight_bytes=heads * k * m * s.weight,
                         activation_bytes=(tokens * heads * (k + m) * s.act, 0.0))


def _table(arch: Architecture, s: _Sizes, groups: tuple[dict, ...], *, tokens: Poly, prefill: bool) -> TableBuilder:
    h = arch.hidden_size
    rows = _Rows(s)
    rows.builder.add("embedding", "memory", s.dtype, layers=1, weight_bytes=tokens * h * s.weight,
                     activation_bytes=(tokens * h * s.act, 0.0))
    for group in groups:
        _layer(arch, rows, tokens=tokens, prefill=prefill, **group)
    logits_tokens = s.batch  # prefill: last position only; decode: one token per sequence
    norm = arch.norm if arch.norm in NORM_FLOPS else "rmsnorm"
    if arch.final_norm:
        rows.elementwise("final_norm", "norm", logits_tokens * h, NORM_FLOPS[norm], 1, weight_bytes=h * NORM_WEIGHT_BYTES)
    rows.gemm("lm_head", logits_tokens, h, arch.vocab_size, 1, bias=arch.lm_head_bias)
    return rows.builder


def _layer_groups(arch: Architecture) -> tuple[dict, ...]:
    """Layers that run the same operators, with how many there are of each."""
    moe = set(arch.moe_layer_indices)
    window_layers = set(arch.sliding_window_layers)
    chunk_layers = set(arch.chunked_attention_layers)
    groups: dict[tuple, int] = {}
    for index in range(arch.num_layers):
        cap = None
        if index in window_layers and arch.sliding_window:
            cap = arch.sliding_window
        elif index in chunk_layers and arch.attention_chunk_size:
            cap = arch.attention_chunk_size  # chunked attention: at most one chunk of keys (an upper bound)
        key = (index in moe, cap)
        groups[key] = groups.get(key, 0) + 1
    return tuple({"moe": moe_layer, "cap": cap, "layers": count} for (moe_layer, cap), count in groups.items())


def _layer(arch: Architecture, rows: _Rows, *, tokens: Poly, prefill: bool, moe: bool, cap: int | None,
           layers: int) -> None:
    h = arch.hidden_size
    norm = arch.norm if arch.norm in NORM_FLOPS else "rmsnorm"
    rows.elementwise("norms", "norm", arch.norms_per_layer * tokens * h, NORM_FLOPS[norm] + (1 if arch.norm_bias else 0),
                     layers, weight_bytes=arch.norms_per_layer * h * NORM_WEIGHT_BYTES * (2 if arch.norm_bias else 1))
    if arch.ssm:
        _ssm(arch, rows, tokens=tokens, prefill=prefill, layers=layers)
    else:
        _attention(arch, rows, tokens=tokens, prefill=prefill, cap=cap, layers=layers)
        if moe:
            _moe(arch, rows, tokens, layers)
        else:
            _mlp(arch, rows, tokens, layers)
    residual_adds = 1 if arch.parallel_attn_mlp or arch.ssm else 2
    rows.elementwise("residual_add", "elementwise", residual_adds * tokens * h, 1, layers, reads=2)


def _attention(arch: Architecture, rows: _Rows, *, tokens: Poly, prefill: bool, cap: int | None, layers: int) -> None:
    s = rows.s
    h, heads, kv_heads, d, dv = arch.hidden_size, arch.num_attention_heads, arch.kv_heads, arch.head_dim, arch.v_head_dim
    if arch.mla:
        _mla_projections(arch, rows, tokens, layers)
        key_width, value_width = arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim, arch.mla.kv_lora_rank
        key_bytes = key_width * s.kv  # the latent and rope key are cached once, shared by all heads
        value_bytes = 0.0  # values are the same cached latent: read once, with the keys
    else:
        rows.gemm("q_proj", tokens, h, heads * d, layers, bias=arch.qkv_bias)
        rows.gemm("k_proj", tokens, h, kv_heads * d, layers, bias=arch.qkv_bias, output_to_kv=True)
        rows.gemm("v_proj", tokens, h, kv_heads * dv, layers, bias=arch.qkv_bias, output_to_kv=True)
        key_width, value_width = d, dv
        key_bytes, value_bytes = kv_heads * d * s.kv, kv_heads * dv * s.kv
    b = s.batch
    if prefill:
        # unfused kernels compute every query against every key of the prompt (causal and window
        # masks are applied to the computed scores), so a window does not shrink prefill
        scores, per_context, keys = b * heads * s.prompt * s.prompt, 0.0, b * s.prompt
        term = lambda per_key: (keys * per_key, 0.0)  # noqa: E731
    else:
        scores, per_context = 0.0, b * heads  # one query row of c scores per head
        term = lambda per_key: (0.0, b * per_key)  # noqa: E731
    score_terms = (scores, per_context)
    q_rows = tokens * heads
    window = None if prefill else cap

    def scaled(factor: float) -> tuple[float, float]:
        return (score_terms[0] * factor, score_terms[1] * factor)

    rows.builder.add("qk_matmul", "attention", s.dtype, layers=layers, flops=scaled(2.0 * key_width),
                     activation_bytes=(q_rows * key_width * s.act + scores * s.act, per_context * s.act),
                     kv_bytes=term(key_bytes), context_cap=window)
    rows.builder.add("softmax", "attention", s.dtype, layers=layers, flops=scaled(SOFTMAX_FLOPS),
                     activation_bytes=scaled(2 * s.act), context_cap=window)
    rows.builder.add("sv_matmul", "attention", s.dtype, layers=layers, flops=scaled(2.0 * value_width),
                     activation_bytes=(scores * s.act + q_rows * value_width * s.act, per_context * s.act),
                     kv_bytes=term(value_bytes), context_cap=window)
    if arch.mla:
        rows.per_head("v_up_proj", tokens, heads, arch.mla.kv_lora_rank, arch.mla.v_head_dim, layers)
    rows.gemm("o_proj", tokens, heads * dv, h, layers, bias=arch.o_bias)


def _mla_projections(arch: Architecture, rows: _Rows, tokens: Poly, layers: int) -> None:
    """DeepSeek MLA with the up-projections absorbed, as its inference code runs decode."""
    mla, h, heads = arch.mla, arch.hidden_size, arch.num_attention_heads
    q_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    if mla.q_lora_rank:
        rows.gemm("q_a_proj", tokens, h, mla.q_lora_rank, layers)
        rows.gemm("q_b_proj", tokens, mla.q_lora_rank, heads * q_head, layers)
    else:
        rows.gemm("q_proj", tokens, h, heads * q_head, layers)
    rows.gemm("kv_a_proj", tokens, h, mla.kv_lora_rank + mla.qk_rope_head_dim, layers, output_to_kv=True)
    # q_nope absorbed into the latent space: per head a (nope x kv_lora) product with W_UK
    rows.per_head("q_absorb", tokens, heads, mla.qk_nope_head_dim, mla.kv_lora_rank, layers)


def _mlp(arch: Architecture, rows: _Rows, tokens: Poly, layers: int) -> None:
    if not arch.intermediate_size:
        return
    h, width = arch.hidden_size, arch.intermediate_size
    if arch.mlp_gated:
        rows.gemm("gate_proj", tokens, h, width, layers, bias=arch.mlp_bias)
    rows.gemm("up_proj", tokens, h, width, layers, bias=arch.mlp_bias)
    rows.elementwise("mlp_act", "elementwise", tokens * width, ACT_FLOPS[arch.mlp_gated], layers,
                     reads=2 if arch.mlp_gated else 1)
    rows.gemm("down_proj", tokens, width, h, layers, bias=arch.mlp_bias)


def _moe(arch: Architecture, rows: _Rows, tokens: Poly, layers: int) -> None:
    moe, h = arch.moe, arch.hidden_size
    experts, k, width = moe.num_experts, moe.experts_per_token, moe.expert_intermediate_size
    touched = rows.s.touched  # expected distinct experts, substituted per request (_touched_experts)
    routed = tokens * k  # token-expert pairs: only these cost FLOPs
    rows.gemm("router", tokens, h, experts, layers)
    for name in ("expert_gate", "expert_up") if arch.mlp_gated else ("expert_up",):
        rows.gemm(name, routed, h, width, layers, weight_copies=touched)
    rows.elementwise("expert_act", "elementwise", routed * width, ACT_FLOPS[arch.mlp_gated], layers,
                     reads=2 if arch.mlp_gated else 1)
    rows.gemm("expert_down", routed, width, h, layers, weight_copies=touched)
    if moe.num_shared_experts:
        shared_width = moe.shared_expert_intermediate_size * moe.num_shared_experts
        for name in ("shared_gate", "shared_up") if arch.mlp_gated else ("shared_up",):
            rows.gemm(name, tokens, h, shared_width, layers)
        rows.gemm("shared_down", tokens, shared_width, h, layers)


def _ssm(arch: Architecture, rows: _Rows, *, tokens: Poly, prefill: bool, layers: int) -> None:
    s, ssm, h = rows.s, arch.ssm, arch.hidden_size
    inner, state = ssm.intermediate_size, ssm.state_size
    # the recurrent state (fp32 in the reference kernels) is read and written once per decode step;
    # the fused prefill scan keeps it on chip and writes it once at the end
    state_bytes = s.batch * inner * state * 4.0
    rows.gemm("in_proj", tokens, h, 2 * inner, layers, bias=ssm.proj_bias)
    rows.elementwise("conv1d", "elementwise", tokens * inner, 2 * ssm.conv_kernel, layers)
    rows.gemm("x_proj", tokens, inner, ssm.time_step_rank + 2 * state, layers)
    rows.gemm("dt_proj", tokens, ssm.time_step_rank, inner, layers, bias=True)
    rows.builder.add("selective_scan", "elementwise", s.dtype, layers=layers,
                     flops=(SCAN_FLOPS_PER_STATE * tokens * inner * state, 0.0),
                     weight_bytes=inner * state * s.weight + inner * s.weight,
                     activation_bytes=(3 * tokens * inner * s.act, 0.0),
                     kv_bytes=(state_bytes if prefill else 2 * state_bytes, 0.0))
    rows.gemm("out_proj", tokens, inner, h, layers, bias=ssm.proj_bias)


def _kv_bytes_per_sequence(arch: Architecture, groups: tuple[dict, ...], kv_bytes: float, tokens: int) -> float:
    """KV cache (or SSM state) of one sequence of ``tokens``; windowed layers keep only the window."""
    if arch.ssm:
        return arch.num_layers * (arch.ssm_state_elements_per_layer * 4.0)
    per_layer = arch.kv_cache_elements_per_token_per_layer * kv_bytes
    return sum(g["layers"] * (min(tokens, g["cap"]) if g["cap"] else tokens) * per_layer for g in groups)
