"""Malformed config.json files never produce a traceback: one line, exit code 1."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmeff.cli.app import main

# A valid Llama-2-7B config (values from meta-llama/Llama-2-7b-hf config.json) to mutate.
BASE = {
    "model_type": "llama",
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": False,
}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def mutated_configs(draw):
    config = dict(BASE)
    for key in draw(st.lists(st.sampled_from(sorted(BASE)), max_size=3, unique=True)):
        del config[key]
    for key in draw(st.lists(st.sampled_from(sorted(BASE) + ["head_dim", "num_local_experts"]), max_size=3)):
        config[key] = draw(junk)
    return config


documents = st.one_of(
    mutated_configs().map(json.dumps),
    st.lists(st.integers(), max_size=3).map(json.dumps),  # JSON, but not an object
    st.text(max_size=40),  # mostly not JSON at all
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=documents)
def test_any_config_gives_a_result_or_one_line_error(document, tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(document)
    code = main(["models", "show", "--config", str(path), "--json"])
    captured = capsys.readouterr()
    if code == 0:
        assert json.loads(captured.out)["parameters"]["total"] > 0
    else:
        assert code == 1
        assert captured.err.startswith("Error: ") and captured.err.count("\n") == 1
        assert "Traceback" not in captured.err
