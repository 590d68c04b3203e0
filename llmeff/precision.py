"""Numeric precisions: how many bytes an element takes, and which peak executes it."""

from __future__ import annotations

from llmeff.errors import InvalidInputError

# Bytes per element. Sub-byte formats are packed (two int4 values per byte); their scales and
# zero points are a quantization plugin's business, not the base precision's.
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp32": 4.0,
    "tf32": 4.0,  # stored as fp32; tf32 is a tensor-core compute mode
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "fp4": 0.5,
}

ALIASES = {"float32": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16", "float8": "fp8"}


def normalise(name: str, *, field: str = "precision") -> str:
    """A canonical precision name; unknown names are an error listing the known ones."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in BYTES_PER_ELEMENT:
        raise InvalidInputError(
            f"unknown precision '{name}' (known: {', '.join(BYTES_PER_ELEMENT)})", field=field
        )
    return key


def bytes_per_element(name: str) -> float:
    return BYTES_PER_ELEMENT[normalise(name)]
