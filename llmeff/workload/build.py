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

from llmeff.architectures import Architecture
from llmeff.param_count import count_parameters
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.workload.operators import ZERO, Linear, MemoryFootprint, Operator, Phase, Workload
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
    sizes = _Sizes(arch, request)
    groups = _layer_groups(arch)
    assumptions = [
        "attention unfused: the score matrix goes through device memory (fused attention is a plugin)",
        "prefill computes logits for the last position of each sequence only",
    ]
    if arch.is_moe:
        assumptions.append("MoE routing uniform across experts: expected distinct experts per step read from memory")
    prefill = Phase("prefill", _operators(arch, sizes, groups, tokens=request.batch * request.prompt_tokens,
                                          prefill=True), request.batch * request.prompt_tokens)
    decode = Phase("decode", _operators(arch, sizes, groups, tokens=request.batch, prefill=False), request.batch)
    kv_per_token = _kv_bytes_per_token(arch, sizes)
    total_tokens = request.prompt_tokens + request.output_tokens
    memory = MemoryFootprint(
        weight_bytes=_parameter_total(arch) * sizes.weight,
        kv_cache_bytes=request.batch * _kv_bytes_per_sequence(arch, sizes, groups, total_tokens),
        activation_bytes=max(op.activation_bytes.at(request.prompt_tokens, op.context_cap) for op in prefill.operators),
    )
    return Workload(
        model=model,
        batch=request.batch,
        prompt_tokens=request.prompt_tokens,
        output_tokens=request.output_tokens,
        weight_dtype=request.weight_dtype,
        activation_dtype=request.activation_dtype,
        kv_dtype=request.kv_dtype or request.activation_dtype,
        prefill=prefill,
        decode=decode,
        memory=memory,
        kv_bytes_per_token=kv_per_token,
        assumptions=tuple(assumptions),
    )


class _Sizes:
    """Bytes per element of each kind of tensor, and the request's shape."""

    def __init__(self, arch: Architecture, request: WorkloadRequest):
        self.weight = BYTES_PER_ELEMENT[request.weight_dtype]
        self.act = BYTES_PER_ELEMENT[request.activation_dtype]
        self.kv = BYTES_PER_ELEMENT[request.kv_dtype or request.activation_dtype]
        self.dtype = request.activation_dtype
        self.batch = request.batch
        self.prompt = request.prompt_tokens


def _gemm(name: str, n: float, k: int, m: int, s: _Sizes, layers: int, *, bias: bool = False,
          output_to_kv: bool = False, weight_rows: float | None = None) -> Operator:
    """``n`` tokens through a ``k x m`` weight; ``weight_rows`` overrides how many weight copies are read."""
    copies = 1 if weight_rows is None else weight_rows
    weight = copies * (k * m + (m if bias else 0)) * s.weight
    out = n * m * (s.kv if output_to_kv else s.act)
    return Operator(
        name=name, kind="gemm", layers=layers, flops=Linear(2.0 * n * k * m), weight_bytes=weight,
        activation_bytes=Linear(n * k * s.act + (0 if output_to_kv else out)),
        kv_bytes=Linear(out if output_to_kv else 0.0), dtype=s.dtype,
    )


def _elementwise(name: str, kind: str, elements: float, flops_per_element: float, s: _Sizes, layers: int,
                 *, reads: int = 1, weight_bytes: float = 0.0) -> Operator:
    return Operator(
        name=name, kind=kind, layers=layers, flops=Linear(flops_per_element * elements), weight_bytes=weight_bytes,
        activation_bytes=Linear((reads + 1) * elements * s.act), kv_bytes=ZERO, dtype=s.dtype,
    )


@lru_cache(maxsize=64)
def _parameter_total(arch: Architecture) -> int:
    return count_parameters(arch).total  # the planner asks for the same model thousands of times


def _operators(arch: Architecture, s: _Sizes, groups: list[dict], *, tokens: int, prefill: bool) -> tuple[Operator, ...]:
    h = arch.hidden_size
    ops: list[Operator] = [
        Operator("embedding", "memory", 1, ZERO, tokens * h * s.weight, Linear(tokens * h * s.act), ZERO, s.dtype)
    ]
    for group in groups:
        ops += _layer_operators(arch, s, tokens=tokens, prefill=prefill, **group)
    logits_tokens = s.batch  # prefill: last position only; decode: one token per sequence
    norm = arch.norm if arch.norm in NORM_FLOPS else "rmsnorm"
    if arch.final_norm:
        ops.append(_elementwise("final_norm", "norm", logits_tokens * h, NORM_FLOPS[norm], s, 1,
                                weight_bytes=h * NORM_WEIGHT_BYTES))
    ops.append(_gemm("lm_head", logits_tokens, h, arch.vocab_size, s, 1, bias=arch.lm_head_bias))
    return tuple(ops)


def _layer_groups(arch: Architecture) -> list[dict]:
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
    return [{"moe": moe_layer, "cap": cap, "layers": count} for (moe_layer, cap), count in groups.items()]


def _layer_operators(arch: Architecture, s: _Sizes, *, tokens: int, prefill: bool, moe: bool, cap: int | None,
                     layers: int) -> list[Operator]:
    h = arch.hidden_size
    norm = arch.norm if arch.norm in NORM_FLOPS else "rmsnorm"
    norm_flops = NORM_FLOPS[norm] + (1 if arch.norm_bias else 0)
    ops = [
        _elementwise("norms", "norm", arch.norms_per_layer * tokens * h, norm_flops, s, layers,
                     weight_bytes=arch.norms_per_layer * h * NORM_WEIGHT_BYTES * (2 if arch.norm_bias else 1))
    ]
    if arch.ssm:
        ops += _ssm_operators(arch, s, tokens=tokens, prefill=prefill, layers=layers)
    else:
        ops += _attention_operators(arch, s, tokens=tokens, prefill=prefill, cap=cap, layers=layers)
        ops += _moe_operators(arch, s, tokens, layers) if moe else _mlp_operators(arch, s, tokens, layers)
    residual_adds = 1 if arch.parallel_attn_mlp or arch.ssm else 2
    ops.append(_elementwise("residual_add", "elementwise", residual_adds * tokens * h, 1, s, layers, reads=2))
    return ops


def _attention_operators(arch: Architecture, s: _Sizes, *, tokens: int, prefill: bool, cap: int | None,
                         layers: int) -> list[Operator]:
    h, heads, kv_heads, d = arch.hidden_size, arch.num_attention_heads, arch.kv_heads, arch.head_dim
    dv = arch.v_head_dim
    if arch.mla:
        ops = _mla_projections(arch, s, tokens, layers)
        key_width, value_width = arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim, arch.mla.kv_lora_rank
        key_bytes_per_token = key_width * s.kv  # the latent and rope key are cached once, shared by all heads
        value_bytes_per_token = 0.0  # values are the same cached latent: read once, with the keys
    else:
        ops = [
            _gemm("q_proj", tokens, h, heads * d, s, layers, bias=arch.qkv_bias),
            _gemm("k_proj", tokens, h, kv_heads * d, s, layers, bias=arch.qkv_bias, output_to_kv=True),
            _gemm("v_proj", tokens, h, kv_heads * dv, s, layers, bias=arch.qkv_bias, output_to_kv=True),
        ]
        key_width, value_width = d, dv
        key_bytes_per_token = kv_heads * d * s.kv
        value_bytes_per_token = kv_heads * dv * s.kv
    b = s.batch
    if prefill:
        # unfused kernels compute every query against every key of the prompt (causal and window
        # masks are applied to the computed scores), so the window does not shrink prefill
        scores = Linear(b * heads * s.prompt * s.prompt)
        kv_read_k = Linear(b * s.prompt * key_bytes_per_token)
        kv_read_v = Linear(b * s.prompt * value_bytes_per_token)
    else:
        scores = Linear(0.0, b * heads)  # one query row of c scores per head
        kv_read_k = Linear(0.0, b * key_bytes_per_token)
        kv_read_v = Linear(0.0, b * value_bytes_per_token)
    q_rows = tokens * heads
    ops += [
        Operator("qk_matmul", "attention", layers, scores.scaled(2.0 * key_width), 0.0,
                 Linear(q_rows * key_width * s.act) + scores.scaled(s.act), kv_read_k, s.dtype,
                 context_cap=None if prefill else cap),
        Operator("softmax", "attention", layers, scores.scaled(SOFTMAX_FLOPS), 0.0, scores.scaled(2 * s.act), ZERO,
                 s.dtype, context_cap=None if prefill else cap),
        Operator("sv_matmul", "attention", layers, scores.scaled(2.0 * value_width), 0.0,
                 scores.scaled(s.act) + Linear(q_rows * value_width * s.act), kv_read_v, s.dtype,
                 context_cap=None if prefill else cap),
    ]
    if arch.mla:
        ops.append(_mla_value_up(arch, s, tokens, layers))
    ops.append(_gemm("o_proj", tokens, heads * dv, h, s, layers, bias=arch.o_bias))
    return ops


def _mla_projections(arch: Architecture, s: _Sizes, tokens: int, layers: int) -> list[Operator]:
    """DeepSeek MLA with the up-projections absorbed, as its inference code runs decode."""
    mla, h, heads = arch.mla, arch.hidden_size, arch.num_attention_heads
    q_head = mla.qk_nope_head_dim + mla.qk_rope_head_dim
    ops = []
    if mla.q_lora_rank:
        ops.append(_gemm("q_a_proj", tokens, h, mla.q_lora_rank, s, layers))
        ops.append(_gemm("q_b_proj", tokens, mla.q_lora_rank, heads * q_head, s, layers))
    else:
        ops.append(_gemm("q_proj", tokens, h, heads * q_head, s, layers))
    ops.append(_gemm("kv_a_proj", tokens, h, mla.kv_lora_rank + mla.qk_rope_head_dim, s, layers, output_to_kv=True))
    # q_nope absorbed into the latent space: per head a (nope x kv_lora) product with W_UK
    ops.append(_batched_heads("q_absorb", tokens, heads, mla.qk_nope_head_dim, mla.kv_lora_rank, s, layers))
    return ops


def _mla_value_up(arch: Architecture, s: _Sizes, tokens: int, layers: int) -> Operator:
    mla = arch.mla
    return _batched_heads("v_up_proj", tokens, arch.num_attention_heads, mla.kv_lora_rank, mla.v_head_dim, s, layers)


def _batched_heads(name: str, tokens: int, heads: int, k: int, m: int, s: _Sizes, layers: int) -> Operator:
    """A per-head ``k x m`` product for every token (MLA's absorbed up-projections)."""
    return Operator(
        name=name, kind="gemm", layers=layers, flops=Linear(2.0 * tokens * heads * k * m),
        weight_bytes=heads * k * m * s.weight,
        activation_bytes=Linear(tokens * heads * (k + m) * s.act), kv_bytes=ZERO, dtype=s.dtype,
    )


def _mlp_operators(arch: Architecture, s: _Sizes, tokens: int, layers: int) -> list[Operator]:
    if not arch.intermediate_size:
        return []
    h, width = arch.hidden_size, arch.intermediate_size
    ops = []
    if arch.mlp_gated:
        ops.append(_gemm("gate_proj", tokens, h, width, s, layers, bias=arch.mlp_bias))
    ops.append(_gemm("up_proj", tokens, h, width, s, layers, bias=arch.mlp_bias))
    ops.append(_elementwise("mlp_act", "elementwise", tokens * width, ACT_FLOPS[arch.mlp_gated], s, layers,
                            reads=2 if arch.mlp_gated else 1))
    ops.append(_gemm("down_proj", tokens, width, h, s, layers, bias=arch.mlp_bias))
    return ops


def _moe_operators(arch: Architecture, s: _Sizes, tokens: int, layers: int) -> list[Operator]:
    moe, h = arch.moe, arch.hidden_size
    experts, k, width = moe.num_experts, moe.experts_per_token, moe.expert_intermediate_size
    touched = experts * (1.0 - (1.0 - k / experts) ** tokens)  # expected distinct experts (uniform routing)
    routed = tokens * k  # token-expert pairs: only these cost FLOPs
    ops = [_gemm("router", tokens, h, experts, s, layers)]
    projections = ("expert_gate", "expert_up") if arch.mlp_gated else ("expert_up",)
    for name in projections:
        ops.append(_gemm(name, routed, h, width, s, layers, weight_rows=touched))
    ops.append(_elementwise("expert_act", "elementwise", routed * width, ACT_FLOPS[arch.mlp_gated], s, layers,
                            reads=2 if arch.mlp_gated else 1))
    ops.append(_gemm("expert_down", routed, width, h, s, layers, weight_rows=touched))
    if moe.num_shared_experts:
        shared_width = moe.shared_expert_intermediate_size * moe.num_shared_experts
        for name in ("shared_gate", "shared_up") if arch.mlp_gated else ("shared_up",):
            ops.append(_gemm(name, tokens, h, shared_width, s, layers))
        ops.append(_gemm("shared_down", tokens, shared_width, h, s, layers))
    return ops


def _ssm_operators(arch: Architecture, s: _Sizes, *, tokens: int, prefill: bool, layers: int) -> list[Operator]:
    ssm, h = arch.ssm, arch.hidden_size
    inner, state = ssm.intermediate_size, ssm.state_size
    # the recurrent state (fp32 in the reference kernels) is read and written once per step in decode;
    # the fused prefill scan keeps it on chip and writes it once at the end
    state_bytes = s.batch * inner * state * 4.0
    return [
        _gemm("in_proj", tokens, h, 2 * inner, s, layers, bias=ssm.proj_bias),
        _elementwise("conv1d", "elementwise", tokens * inner, 2 * ssm.conv_kernel, s, layers),
        _gemm("x_proj", tokens, inner, ssm.time_step_rank + 2 * state, s, layers),
        _gemm("dt_proj", tokens, ssm.time_step_rank, inner, s, layers, bias=True),
        Operator("selective_scan", "elementwise", layers, Linear(SCAN_FLOPS_PER_STATE * tokens * inner * state),
                 inner * state * s.weight + inner * s.weight, Linear(3 * tokens * inner * s.act),
                 Linear(state_bytes if prefill else 2 * state_bytes), s.dtype),
        _gemm("out_proj", tokens, inner, h, s, layers, bias=ssm.proj_bias),
    ]


def _kv_bytes_per_token(arch: Architecture, s: _Sizes) -> float:
    """KV cache bytes one token adds to one sequence, over all attention layers."""
    return len(arch.attention_layer_indices) * arch.kv_cache_elements_per_token_per_layer * s.kv


def _kv_bytes_per_sequence(arch: Architecture, s: _Sizes, groups: list[dict], tokens: int) -> float:
    """KV cache (or SSM state) of one sequence of ``tokens``; windowed layers keep only the window."""
    if arch.ssm:
        return arch.num_layers * (arch.ssm_state_elements_per_layer * 4.0)
    per_layer = arch.kv_cache_elements_per_token_per_layer * s.kv
    total = 0.0
    for group in groups:
        kept = min(tokens, group["cap"]) if group["cap"] else tokens
        total += group["layers"] * kept * per_layer
    return total
