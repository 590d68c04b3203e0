"""Prompt compression (LLMLingua, LLMLingua-2, Selective Context, summaries, soft prompts, retrieval).

The target model prefills S / ``ratio`` tokens (or ``kept_tokens``) instead of S: the workload is
rebuilt from its architecture at the shorter prompt with the same batch, output length and
precisions (a data-stage rewrite: it runs before every other plugin), so the prefill's linear
terms shrink by r, its attention square by r^2, and the KV cache by the prompt's share.

The compressor's own pass over the original S tokens is charged in the prefill phase, built with
the same operator conventions as the target from the compressor's shape (its config.json):
- ``bert-base``: LLMLingua-2's small compressor, bert-base-multilingual-cased (12 layers, hidden
  768, 12 heads, FFN 3072, vocabulary 119547), with a 2-way token-classification head on every
  token (arXiv 2403.12968 trains "XLM-RoBERTa-large and mBERT");
- ``xlm-roberta-large``: LLMLingua-2's large compressor (24 layers, 1024, 16 heads, 4096, 250002);
- ``llama-7b``: LLMLingua's scorer, a LLaMA-7B-size causal LM (arXiv 2310.05736; 2403.12968 names
  "LLaMa-7B"): Llama-2-7B's shape, logits at every position (it scores each token's perplexity);
- ``none``: no on-device cost (retrieval picks passages off-roofline; soft prompts and gist tokens
  are trained or encoded offline and amortised).
Encoders read the prompt in chunks of their 512 positions (equal chunks), the causal scorer in
chunks of its 4096. The compressor runs at the target's activation precision and its weights stay
resident beside the target's (memory).

Does not model: quality (reported results carry it); LLMLingua's coarse demonstration-level pass
and iterative segments beyond one pass over S (a lower bound of its cost); summarising compressors
that generate their output (RECOMP, Nano-Capsulator: their decode is not charged); the tokenizers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from llmeff.architectures.model import Architecture
from llmeff.errors import InvalidInputError
from llmeff.param_count import count_parameters
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._decode_helpers import (concat, in_range, new_rows, one_of, rebuild, renamed,
                                                       take)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest


def _encoder(layers: int, hidden: int, heads: int, ffn: int, vocab: int) -> Architecture:
    """A BERT-style encoder: post-LN LayerNorms with bias, GELU MLP, biases, learned positions."""
    return Architecture(model_type="bert", parsed_as="bert", num_layers=layers, hidden_size=hidden,
                        embedding_dim=hidden, vocab_size=vocab, num_attention_heads=heads,
                        num_key_value_heads=heads, head_dim=hidden // heads, intermediate_size=ffn,
                        tie_word_embeddings=True,
                        mlp_gated=False, activation="gelu", norm="layernorm", norm_bias=True, final_norm=False,
                        qkv_bias=True, o_bias=True, mlp_bias=True, position_embedding="learned",
                        position_table_rows=512, embedding_norm=True)


# (architecture, positions it reads at once, encoder with a token classifier?) from the models' config.json
COMPRESSORS = {
    "bert-base": (_encoder(12, 768, 12, 3072, 119547), 512, True),  # bert-base-multilingual-cased
    "xlm-roberta-large": (_encoder(24, 1024, 16, 4096, 250002), 512, True),  # 514 positions, 2 offset
    "llama-7b": (Architecture(model_type="llama", parsed_as="llama", num_layers=32, hidden_size=4096,
                              embedding_dim=4096, vocab_size=32000, num_attention_heads=32,
                              num_key_value_heads=32, head_dim=128, intermediate_size=11008), 4096, False),
}
CLASSES = 2  # LLMLingua-2 labels each token preserve or discard


@dataclass(frozen=True)
class PromptCompressionParams(Params):
    ratio: float | None = None  # r = original / kept tokens
    kept_tokens: int | None = None  # instead of a ratio: summaries, soft prompts, retrieved passages
    compressor: str = "bert-base"

    def validate(self) -> None:
        one_of(self.compressor, tuple(COMPRESSORS) + ("none",), "compressor")
        if (self.ratio is None) == (self.kept_tokens is None):
            raise InvalidInputError("give exactly one of ratio and kept_tokens", field="ratio")
        if self.ratio is not None:
            in_range(self.ratio, 1.0, 10**6, "ratio", low_open=True)
        else:
            in_range(self.kept_tokens, 1, 10**8, "kept_tokens")

    def kept(self, prompt: int) -> int:
        return self.kept_tokens if self.kept_tokens is not None else max(1, round(prompt / self.ratio))


def compressor_pass(workload, name: str):
    """The compressor's rows over the original prompt, and its resident weight bytes."""
    arch, window, encoder = COMPRESSORS[name]
    b, s, dtype = workload.batch, workload.prompt_tokens, workload.activation_dtype
    chunks = math.ceil(s / window)
    chunk = math.ceil(s / chunks)
    request = WorkloadRequest(batch=b * chunks, prompt_tokens=chunk, output_tokens=1, weight_dtype=dtype,
                              activation_dtype=dtype)
    table = build_workload(arch, request, model=name).prefill.table
    act, tokens = BYTES_PER_ELEMENT[dtype], b * chunks * chunk
    h, v = arch.hidden_size, arch.vocab_size
    head = table.index("lm_head")
    if encoder:  # a hidden -> 2 classifier on every token replaces the vocabulary head
        row = dict(name="classifier", kind="gemm", layers=1, flops_base=2.0 * tokens * h * CLASSES,
                   weight_bytes=(h + 1) * CLASSES * act, activation_bytes_base=tokens * (h + CLASSES) * act)
        table = concat(take(table, [i for i in range(len(table)) if i != head]), new_rows([row], dtype=dtype))
        extra = (h + 1) * CLASSES
    else:  # perplexity of every prompt token: logits at every position, not only the last
        flops, acts = table.flops_base.copy(), table.activation_bytes_base.copy()
        flops[head], acts[head] = 2.0 * tokens * h * v, tokens * (h + v) * act
        table = table.replace(flops_base=flops, activation_bytes_base=acts)
        extra = 0
    return renamed(table, "compressor_"), (count_parameters(arch).total + extra) * act


class PromptCompression(BaseTechnique):
    id = "prompt-compression"
    stage = "data"
    summary = "Prefills S/r tokens instead of S and charges the compressor's own pass over the original prompt."
    Params = PromptCompressionParams

    def param_space(self, workload, hardware):
        # LLMLingua-2: 2x-5x compression (arXiv 2403.12968 abstract); LLMLingua: up to 20x (2310.05736 abstract)
        return (PromptCompressionParams(ratio=2.0), PromptCompressionParams(ratio=5.0),
                PromptCompressionParams(ratio=5.0, compressor="xlm-roberta-large"),
                PromptCompressionParams(ratio=20.0, compressor="llama-7b"))

    def applicability(self, workload, hardware, params):
        if workload.architecture is None:
            return refuse("the workload carries no architecture to rebuild at the shorter prompt")
        if workload.applied:
            first = workload.applied[0].id
            return refuse(f"it rebuilds the workload from the architecture, so it must run before {first}")
        if params.kept(workload.prompt_tokens) >= workload.prompt_tokens:
            return refuse(f"the prompt ({workload.prompt_tokens} tokens) is not longer than what would be kept")
        return OK

    def rewrite(self, workload, hardware, params):
        s, kept = workload.prompt_tokens, params.kept(workload.prompt_tokens)
        short = rebuild(workload, batch=workload.batch, prompt=kept, output=workload.output_tokens)
        prefill, weights, lines = short.prefill.table, workload.memory.weight_bytes, []
        lines.append(f"prompt {s} -> {kept} tokens (ratio {s / kept:.2f}); KV footprint "
                     f"{workload.memory.kv_cache_bytes / 1e9:.3f} GB -> {short.memory.kv_cache_bytes / 1e9:.3f} GB")
        activation = short.memory.activation_bytes
        if params.compressor != "none":
            rows, resident = compressor_pass(workload, params.compressor)
            prefill = concat(prefill, rows)
            weights += resident
            activation = max(activation, float(rows.activation_bytes_base.max()))
            lines.append(f"compressor {params.compressor} reads all {s} prompt tokens: "
                         f"{float((rows.flops_base * rows.layers).sum()) / 1e9:.1f} GFLOP, "
                         f"{resident / 1e9:.3f} GB of weights resident")
        else:
            lines.append("no compressor cost on the device (offline or off-roofline)")
        memory = replace(short.memory, weight_bytes=weights, activation_bytes=activation)
        new = with_tables(workload, prefill, short.decode.table, memory=memory, prompt_tokens=kept,
                          kv_bytes_per_token=short.kv_bytes_per_token,
                          assumptions=short.assumptions + (f"prompt compressed {s} -> {kept} tokens",))
        new = replace(new, prefill=replace(new.prefill, tokens=short.prefill.tokens))
        return new, lines


PLUGIN = PromptCompression()
