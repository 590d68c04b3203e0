"""A measurement row's precision and technique labels, as the cost model applies them.

A row says ``weight_dtype=fp8, activation_dtype=fp8, technique=fp8-w8a8;tensor-parallel``; the cost
model wants a 16-bit base workload plus plugin specs (``weight-activation-quant:...,number_format=fp``,
``tensor-parallel:degree=8``). Quantization is expressed through the plugins, as a planner user
applies it, never also through the base dtypes (that would quantize twice). Every guess made on the
way is one sentence in ``assumptions``; a label with no sound mapping raises ``UnpredictableLabel``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmeff.errors import LlmeffError


@dataclass(frozen=True)
class Configuration:
    """What the cost model applies for one row: the base workload's precisions and the plugin specs."""

    weight_dtype: str  # for WorkloadRequest: a canonical 16-bit precision (quantization is a plugin)
    activation_dtype: str
    kv_dtype: str
    techniques: tuple[str, ...]  # plugin specs "plugin-id:k=v,...", in the order to apply
    labels: tuple[str, ...]  # the row's technique labels, as written
    assumptions: tuple[str, ...]  # one sentence each


class UnpredictableLabel(LlmeffError):
    """A row whose labels the cost model cannot express yet; the message says why."""


# llama.cpp tools/quantize/README.md, meta-llama/Llama-3.1-8B table, Q4_K_M row: 4.8944 bits/weight
# (the whole file's average; the older examples/quantize/README.md gives 4.84/4.83/4.80 for Llama 2 7B/13B/70B)
Q4_K_M_BITS_PER_WEIGHT = 4.8944
INT4_GROUP = 128  # llm-awq's scripts quantize with --w_bit 4 --q_group_size 128 (KB weight-only-quant-awq)
PLD_DRAFT_TOKENS = 10  # Spec-Bench evaluation/inference_pld.py: draft_num_candidate_tokens=10
MEDUSA_HEADS = 4  # Spec-Bench evaluation/inference_medusa.py: num_heads = 4
MEDUSA_TREE_TOKENS = 64  # its default tree mc_sim_7b_63: 63 candidates plus the root
CHUNK_TOKENS = 512  # chunked-prefill's default chunk (the plugin's SERVING_CHUNKS[0])

SIXTEEN_BIT = ("fp16", "bf16")
FP8_W8A8 = "weight-activation-quant:weight_bits=8,activation_bits=8,number_format=fp"
FP8_KV_ONLY = "kv-cache-quant:bits=8,group_size=0,zero_point=false,residual_tokens=0,number_format=fp"

# the precision scheme each quantization label names
SCHEME_LABELS = {
    "fp8-w8a8": "fp8",
    "fp4-w4a4": "fp4",
    "weight-only-int4": "int4",
    "weight-only-int4-awq": "int4",
    "weight-int4-act-int16": "int4-int16",
    "weight-only-q4_k_m": "q4_k_m",
}
SERVING_LABELS = {
    "flash-attention": "fused-attention",
    "chunked-prefill": "chunked-prefill",
    "dynamic-splitfuse": "chunked-prefill",
    "paged-kv": "paged-kv",
    "paged-attention": "paged-kv",
}
SPECULATIVE_LABELS = ("speculative-decoding", "speculative-decoding-ngram", "speculative-decoding-medusa",
                      "speculative-decoding-eagle", "speculative-decoding-eagle2", "speculative-decoding-hydra",
                      "speculative-decoding-retrieval", "lookahead-decoding")
# why the drafts of the other Spec-Bench methods cannot be expressed with the plugin's drafters
SPECULATIVE_REFUSALS = {
    "speculative-decoding": "Spec-Bench's SpS drafts with HF assisted generation (a vicuna-68m drafter) and "
                            "neither the row nor its script fixes the number of draft tokens per step",
    "speculative-decoding-eagle": "EAGLE drafts with a one-layer decoder over the target's features; the plugin "
                                  "models Medusa-style heads or a proportionally smaller draft model, not it",
    "speculative-decoding-eagle2": "EAGLE-2 drafts a dynamic tree with a one-layer decoder over the target's "
                                   "features; the plugin models neither the drafter nor a tree that changes size",
    "speculative-decoding-hydra": "Hydra's heads each read the previous head's token, unlike the independent "
                                  "Medusa heads the plugin models, and the row does not give its tree size",
    "speculative-decoding-retrieval": "REST's draft tree per step (tokens retrieved from its datastore) is not "
                                      "stated by the row",
    "lookahead-decoding": "lookahead decoding's per-step tokens (its Jacobi window and n-gram verification "
                          "branch) are not stated by the row",
}
MEAN_ACCEPTED = re.compile(r"mean accepted tokens(?: per step)?\s*[=:]\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
HIT_RATIO = re.compile(r"hit (?:ratio|rate)\s*(?:of|=|:)?\s*(0?\.\d+)", re.IGNORECASE)
HISTORY = re.compile(r"(\d+)-token question with (\d+) history tokens", re.IGNORECASE)


def configuration_for(row) -> Configuration:
    """The base precisions and plugin specs for ``row`` (a MeasurementRow or anything with its fields).

    Raises UnpredictableLabel, naming the label and the reason, when the row cannot be expressed.
    """
    labels = tuple(part.strip() for part in (row.technique or "").split(";") if part.strip())
    wanted = [label.lower() for label in labels]
    for label in wanted:
        known = label in SCHEME_LABELS or label in SERVING_LABELS or label in SPECULATIVE_LABELS
        if not known and label not in ("tensor-parallel", "kv-fp8", "prefix-kv-reuse", "moe-ffn"):
            raise UnpredictableLabel(f"unknown technique label '{label}': no cost-model plugin is mapped to it")
    assumptions: list[str] = []
    techniques = _precision(row, wanted, assumptions)
    weight, activation, kv = _base_dtypes(row, assumptions)
    techniques += _parallelism(row, wanted, assumptions)
    techniques += _serving(row, wanted, assumptions)
    techniques += _speculative(row, wanted, assumptions)
    if "moe-ffn" in wanted:
        assumptions.append("moe-ffn: the experts come from the model's architecture; nothing further to apply")
    return Configuration(weight_dtype=weight, activation_dtype=activation, kv_dtype=kv, techniques=tuple(techniques),
                         labels=labels, assumptions=tuple(assumptions))


# -- precision -------------------------------------------------------------------------------------

def _kind(dtype: str | None) -> str | None:
    """The precision a dtype field names: 'int4 (w4a16; a few layers w8a16)' -> 'int4'."""
    if dtype is None:
        return None
    match = re.match(r"[a-z0-9_]+", dtype.strip().lower())
    return match.group(0) if match else dtype.strip().lower()


def _scheme_from_dtypes(row) -> str | None:
    """The quantization scheme the dtype fields imply (None: a 16-bit baseline)."""
    weight, activation = _kind(row.weight_dtype), _kind(row.activation_dtype)
    if weight in (None, *SIXTEEN_BIT) and activation in (None, *SIXTEEN_BIT):
        return None
    if weight == "q4_k_m" and activation in (None, *SIXTEEN_BIT):
        return "q4_k_m"
    if weight == "int4" and activation in (None, *SIXTEEN_BIT):
        return "int4"
    if weight == "int4" and activation == "int16":
        return "int4-int16"
    if weight == activation and weight in ("fp8", "fp4"):
        return weight
    raise UnpredictableLabel(f"weight_dtype '{row.weight_dtype}' with activation_dtype '{row.activation_dtype}' "
                             "has no mapping to a quantization plugin")


def _precision(row, wanted: list[str], assumptions: list[str]) -> list[str]:
    named = {SCHEME_LABELS[label] for label in wanted if label in SCHEME_LABELS}
    if len(named) > 1:
        raise UnpredictableLabel(f"the labels name more than one quantization scheme ({', '.join(sorted(named))})")
    implied = _scheme_from_dtypes(row)
    scheme = next(iter(named), None)
    if scheme is not None and implied is not None and scheme != implied:
        raise UnpredictableLabel(f"the labels say {scheme} but weight_dtype '{row.weight_dtype}' and "
                                 f"activation_dtype '{row.activation_dtype}' say {implied}")
    if scheme is None and implied is not None:
        scheme = implied
        assumptions.append(f"no quantization label: the dtypes (weights {row.weight_dtype}, activations "
                           f"{row.activation_dtype or 'not stated'}) are taken as {scheme}")
    kv_fp8 = "kv-fp8" in wanted or _kind(row.kv_dtype) == "fp8"
    if _kind(row.kv_dtype) not in (None, "fp8", *SIXTEEN_BIT):
        raise UnpredictableLabel(f"kv_dtype '{row.kv_dtype}' has no mapping to a KV-cache plugin")
    if scheme == "fp4":
        raise UnpredictableLabel("fp4-w4a4 (FP4 weights and activations) cannot be expressed: weight-activation-quant "
                                 "models number_format=fp only as FP8 (8-bit weights and activations) and runs its "
                                 "W4A4 GEMMs in int4, so no plugin setting puts the GEMMs on the fp4 peak")
    if scheme == "fp8":
        assumptions.append("fp8-w8a8: GEMMs in FP8 (E4M3) at the device's fp8 peak with per-channel weight scales and "
                           "per-token activation scales; attention, norms and the LM head stay 16-bit")
        if kv_fp8:
            assumptions.append("fp8 KV cache: one scale per tensor (weight-activation-quant kv_bits=8)")
            return [FP8_W8A8 + ",kv_bits=8"]
        return [FP8_W8A8]
    specs = [FP8_KV_ONLY] if kv_fp8 else []
    if kv_fp8:
        assumptions.append("fp8 KV cache with 16-bit weights: one scale per tensor (kv-cache-quant number_format=fp)")
    if scheme == "q4_k_m":
        assumptions.append(
            f"q4_k_m stored at {Q4_K_M_BITS_PER_WEIGHT} bits per weight, the whole-file average llama.cpp's "
            "tools/quantize/README.md lists for Llama-3.1-8B (its examples/quantize/README.md: 4.84, 4.83, 4.80 for "
            "Llama 2 7B, 13B, 70B), on every GEMM including the LM head (Q4_K_M stores it as Q6_K); the embedding "
            "table stays 16-bit in the footprint")
        return [f"weight-only-quant:bits=4,bits_per_weight={Q4_K_M_BITS_PER_WEIGHT},lm_head=true", *specs]
    if scheme in ("int4", "int4-int16"):
        assumptions.append(_int4_assumption(row, wanted))
        if scheme == "int4-int16":
            assumptions.append("int16 activations modelled as 16-bit fp16 compute: llmeff has no int16 precision, "
                               "the activations take the same 2 bytes, and no NPU entry publishes an int16 peak")
        return [f"weight-only-quant:bits=4,group_size={INT4_GROUP}", *specs]
    return specs


def _int4_assumption(row, wanted: list[str]) -> str:
    if "weight-only-int4-awq" in wanted:
        return (f"AWQ W4A16: 4-bit weights with an fp16 scale and a 4-bit zero point per {INT4_GROUP} weights "
                f"(llm-awq quantizes with --w_bit 4 --q_group_size {INT4_GROUP}); the LM head stays 16-bit")
    text = f"int4 weights, group size not stated: an fp16 scale and a 4-bit zero point per {INT4_GROUP} weights assumed"
    if "a few layers" in (row.weight_dtype or "").lower():
        text += "; the few 8-bit layers the source mentions are counted as 4-bit (weights slightly undercounted)"
    return text


def _base_dtypes(row, assumptions: list[str]) -> tuple[str, str, str]:
    """16-bit base precisions: the row's where it states a 16-bit one, else fp16, said so."""
    weight = _kind(row.weight_dtype)
    if weight is None:
        assumptions.append("weight precision not stated: fp16 assumed")
    base = weight if weight in SIXTEEN_BIT else "fp16"
    activation = _kind(row.activation_dtype)
    if activation is None:
        assumptions.append(f"activation precision not stated: {base} assumed")
    activation = activation if activation in SIXTEEN_BIT else base
    kv = _kind(row.kv_dtype)
    if kv is None:
        assumptions.append(f"KV-cache precision not stated: {activation} assumed")
    return base, activation, kv if kv in SIXTEEN_BIT else activation


# -- parallelism, serving, speculation -----------------------------------------------------------------

def _parallelism(row, wanted: list[str], assumptions: list[str]) -> list[str]:
    devices = row.device_count
    if "tensor-parallel" in wanted:
        if devices < 2:
            raise UnpredictableLabel(f"tensor-parallel on {devices} device: the degree must be at least 2")
        return [f"tensor-parallel:degree={devices}"]
    if devices < 2:
        return []
    if (row.engine or "").lower().startswith("llama.cpp") or "layer split" in (row.notes or "").lower():
        # llama.cpp's default split gives each device whole layers: a pipeline, one sequence through it
        assumptions.append(f"llama.cpp's default layer split over {devices} devices modelled as a {devices}-stage "
                           "pipeline with one micro-batch; any overlap of prompt micro-batches is not modelled")
        return [f"pipeline-parallel:stages={devices},micro_batches=1"]
    assumptions.append(f"{devices} devices and no parallelism label: tensor parallelism of degree {devices} assumed")
    return [f"tensor-parallel:degree={devices}"]


def _serving(row, wanted: list[str], assumptions: list[str]) -> list[str]:
    specs: list[str] = []
    for label in wanted:
        spec = SERVING_LABELS.get(label)
        if spec is not None and spec not in specs:
            specs.append(spec)
    if "prefix-kv-reuse" in wanted:
        specs.append(_prefix_caching(row, assumptions))
        if "chunked-prefill" in specs:
            # TinyChat's "chunk prefilling" is the new chunk attending to the cached history: prefix caching
            specs.remove("chunked-prefill")
            assumptions.append("chunked-prefill with prefix-kv-reuse: the new tokens are prefilled as one chunk "
                               "against the cached history, which prefix-caching models; no further chunking")
    if "chunked-prefill" in specs:
        source = "DeepSpeed-FastGen's Dynamic SplitFuse" if "dynamic-splitfuse" in wanted else "chunked prefill"
        if row.input_tokens is not None and row.input_tokens <= CHUNK_TOKENS:
            specs.remove("chunked-prefill")
            assumptions.append(f"{source}: a {CHUNK_TOKENS}-token chunk holds the whole {row.input_tokens}-token "
                               "prompt, so the prefill is not split")
        else:
            assumptions.append(f"{source}: token budget not stated, the plugin's {CHUNK_TOKENS}-token chunk assumed "
                               "(vLLM's default max_num_batched_tokens)")
    order = ("fused-attention", "chunked-prefill", "prefix-caching", "paged-kv")
    return sorted(specs, key=lambda spec: order.index(spec.partition(":")[0]))


def _prefix_caching(row, assumptions: list[str]) -> str:
    """prefix-caching at the reused share the notes give; without one, a prediction would be a guess."""
    notes = row.notes or ""
    stated = HIT_RATIO.search(notes)
    if stated:
        ratio = float(stated.group(1))
        assumptions.append(f"prefix KV reuse at the hit ratio the notes state ({ratio:g})")
    elif history := HISTORY.search(notes):
        question, reused = int(history.group(1)), int(history.group(2))
        ratio = reused / (reused + question)
        assumptions.append(f"prefix KV reuse: the {reused} history tokens of a {reused + question}-token prompt "
                           f"(history plus a {question}-token question) are cached, a hit ratio of {ratio:.4f}")
    else:
        raise UnpredictableLabel("prefix-kv-reuse: the notes do not say how much of the prompt was reused, and "
                                 "the time saved depends on it")
    return f"prefix-caching:hit_ratio={ratio!r},shared=false"


def _speculative(row, wanted: list[str], assumptions: list[str]) -> list[str]:
    methods = [label for label in wanted if label in SPECULATIVE_LABELS]
    if not methods:
        return []
    if len(methods) > 1:
        raise UnpredictableLabel(f"more than one speculative method ({', '.join(methods)})")
    method = methods[0]
    accepted = MEAN_ACCEPTED.search(row.notes or "")
    if accepted is None:
        raise UnpredictableLabel(f"{method}: speculative decoding needs the measured acceptance length (mean "
                                 "accepted tokens per step), which the row does not state")
    tau = float(accepted.group(1))
    if not (row.engine or "").lower().startswith("spec-bench"):
        raise UnpredictableLabel(f"{method}: the row states {tau:g} accepted tokens per step, but not the draft "
                                 f"length and drafter of its engine ({row.engine or 'not stated'})")
    if method == "speculative-decoding-ngram":
        assumptions.append(f"Spec-Bench PLD: up to {PLD_DRAFT_TOKENS} tokens copied from the prompt per step "
                           "(inference_pld.py), verified in one pass; the lookup costs nothing on the device; "
                           f"{tau:g} accepted tokens per step as the row states")
        return [f"speculative-decoding:drafter=none,draft_len={PLD_DRAFT_TOKENS},mean_accepted={tau!r}"]
    if method == "speculative-decoding-medusa":
        assumptions.append(f"Spec-Bench Medusa: {MEDUSA_HEADS} Medusa-1 heads (inference_medusa.py) verifying the "
                           f"mc_sim_7b_63 tree of {MEDUSA_TREE_TOKENS} tokens with the root; {tau:g} accepted "
                           "tokens per step as the row states")
        return [f"speculative-decoding:drafter=heads,draft_len={MEDUSA_HEADS},verify_tokens={MEDUSA_TREE_TOKENS},"
                f"mean_accepted={tau!r}"]
    raise UnpredictableLabel(f"{method}: {SPECULATIVE_REFUSALS[method]}")
