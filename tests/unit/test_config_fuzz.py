"""Malformed config documents give an Architecture or a one-line InvalidInputError, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmeff.architectures import Architecture, count_parameters
from llmeff.errors import InvalidInputError

CONFIGS = Path(__file__).resolve().parents[1] / "data" / "configs"
# Valid starting points covering every parsing path: llama-like, learned positions, Falcon,
# MLA + MoE, Mamba without model_type, and a multimodal document with text_config.
BASES = [json.loads((CONFIGS / name).read_text()) for name in (
    "llama-2-7b.json", "mixtral-8x7b.json", "gpt2.json", "opt-6.7b.json", "falcon-7b.json",
    "falcon-40b-refinedweb.json", "deepseek-v3.json", "deepseek-v2-lite.json", "qwen3-30b-a3b.json",
    "gemma-2-9b.json", "phi-2.json", "mamba-2.8b-ssm.json", "llama-4-scout.json",
)]
EXTRA_KEYS = ["head_dim", "model_type", "text_config", "moe_layers", "mlp_only_layers", "no_rope_layers",
              "sliding_window", "use_sliding_window", "rope_scaling", "ssm_cfg", "time_step_rank",
              "word_embed_proj_dim", "num_experts", "q_lora_rank", "pad_vocab_size_multiple"]

scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, -1, 1, 2, 3, 7, 64, 2**40 + 1, 10**30]),
    st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8), st.sampled_from(["auto", "Mamba2", "llama", "mamba", "llama4_text", ""]),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def mutated(draw):
    doc = json.loads(json.dumps(draw(st.sampled_from(BASES))))  # a deep copy
    target = doc["text_config"] if "text_config" in doc and draw(st.booleans()) else doc
    keys = sorted(target)
    for key in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True)):
        del target[key]
    for key in draw(st.lists(st.sampled_from(keys + EXTRA_KEYS), max_size=4)):
        target[key] = draw(junk)
    return doc


documents = st.one_of(mutated(), mutated(), mutated(), junk)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents)
def test_malformed_configs_never_raise_anything_else(document):
    try:
        architecture = Architecture.from_hf_config(document, where="fuzz.json")
    except InvalidInputError as exc:
        text = str(exc)
        assert text.startswith("fuzz.json: ")
        assert text.splitlines() == [text]  # one line, whatever the line-break character
        return
    # whatever parses must also count and serialise without surprises
    count = count_parameters(architecture)
    assert count.total >= count.active > 0
    json.dumps(architecture.to_dict())
    json.dumps(count.to_dict())
