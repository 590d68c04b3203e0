"""Typed, validated access to the keys of one config.json document.

Every failure becomes an InvalidInputError whose one-line message names the file and the key,
so a user can fix a hand-edited config without reading a traceback.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from llmeff.errors import InvalidInputError

# Anything larger is a typo or garbage; it would also make per-layer tables absurdly long.
MAX_SIZE = 2**40
MAX_LAYERS = 10_000


def one_line(text: str, limit: int | None = 200) -> str:
    """``text`` without line breaks (whitespace runs collapsed if it had any), cut to ``limit``."""
    lines = text.splitlines()
    flat = text if lines == [text] else " ".join(text.split())
    return flat if limit is None or len(flat) <= limit else flat[: limit - 3] + "..."


class ConfigFields:
    """One config mapping (the document, or its text_config) with the file it came from."""

    REQUIRED: Any = object()
    MAX_LAYERS = MAX_LAYERS
    _MISSING: Any = object()

    def __init__(self, doc: Mapping[Any, Any], where: str, prefix: str = ""):
        self._doc = doc
        self.where = where
        self._prefix = prefix

    # -- plumbing -------------------------------------------------------------------------------

    def error(self, key: str | None, message: str) -> InvalidInputError:
        return InvalidInputError(one_line(message), where=self.where,
                                 field=one_line(self._prefix + key) if key else None)

    def has(self, keys: Sequence[str]) -> bool:
        return any(k in self._doc for k in keys)

    def present_key(self, keys: str | Sequence[str]) -> str:
        """The first of ``keys`` that the document holds (else the first), for error messages."""
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        return next((k for k in keys if k in self._doc), keys[0])

    def _lookup(self, keys: str | Sequence[str]) -> tuple[str, Any]:
        key = self.present_key(keys)
        return key, self._doc.get(key, self._MISSING)

    def _absent(self, key: str, value: Any, default: Any, nullable: bool) -> tuple[bool, Any]:
        """Resolve a missing or null value: (True, result) when the caller should return result."""
        if value is self._MISSING:
            if default is self.REQUIRED:
                raise self.error(key, "required field is missing")
            return True, default
        if value is None:
            if nullable and default is not self.REQUIRED:
                return True, None  # null means "unset" in transformers, as in the config classes
            raise self.error(key, "must not be null")
        return False, None

    def nested(self, key: str) -> ConfigFields:
        """The object under ``key`` (e.g. text_config), with the key as prefix in error messages."""
        value = self._doc.get(key)
        if not isinstance(value, Mapping):
            raise self.error(key, f"expected an object, got {self.describe(value)}")
        return ConfigFields(value, self.where, f"{self._prefix}{key}.")

    def nested_or_none(self, key: str) -> ConfigFields | None:
        return None if self._doc.get(key) is None else self.nested(key)

    @staticmethod
    def describe(value: Any) -> str:
        """A short, one-line JSON-flavoured description of a bad value."""
        if value is None:
            return "null"
        if isinstance(value, bool):
            return f"a boolean ({str(value).lower()})"
        if isinstance(value, str):
            return f"a string ({one_line(repr(value), 40)})"
        if isinstance(value, (int, float)):
            return f"the number {one_line(repr(value), 40)}"
        if isinstance(value, Mapping):
            return "an object"
        if isinstance(value, (list, tuple)):
            return "an array"
        return f"a {type(value).__name__}"

    # -- typed readers ----------------------------------------------------------------------------

    def integer(self, keys: str | Sequence[str], *, default: Any = REQUIRED, minimum: int = 1,
                maximum: int = MAX_SIZE, nullable: bool = False) -> Any:
        key, value = self._lookup(keys)
        done, result = self._absent(key, value, default, nullable)
        if done:
            return result
        number = self._as_int(key, value, "an integer")
        if number < minimum:
            wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.error(key, f"must be {wanted}, got {number}")
        if number > maximum:
            raise self.error(key, f"{number} is implausibly large (limit {maximum})")
        return number

    def _as_int(self, key: str, value: Any, wanted: str) -> int:
        # bool is an int subclass in Python, but `true` is never a size in a config
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected {wanted}, got {self.describe(value)}")
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise self.error(key, f"expected {wanted}, got the non-integer number {one_line(repr(value), 40)}")
            return int(value)
        return value

    def integer_or_auto(self, keys: str | Sequence[str], *, auto: int) -> int:
        """An integer that may also be the string "auto" (Mamba's time_step_rank)."""
        key, value = self._lookup(keys)
        if value is self._MISSING or value is None or value == "auto":
            return auto
        return self.integer(key)

    def number(self, keys: str | Sequence[str], *, default: Any = REQUIRED, maximum: float = math.inf,
               nullable: bool = False) -> Any:
        """A finite, positive real number (rope_theta, partial_rotary_factor, ...)."""
        key, value = self._lookup(keys)
        done, result = self._absent(key, value, default, nullable)
        if done:
            return result
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {self.describe(value)}")
        if not 0 < value <= maximum:
            bound = "positive" if maximum == math.inf else f"in (0, {maximum:g}]"
            raise self.error(key, f"must be {bound}, got {value!r}")
        return float(value)

    def flag(self, keys: str | Sequence[str], *, default: bool) -> bool:
        key, value = self._lookup(keys)
        if value is self._MISSING or value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {self.describe(value)}")
        return value

    def text(self, keys: str | Sequence[str], *, default: Any = REQUIRED) -> Any:
        key, value = self._lookup(keys)
        done, result = self._absent(key, value, default, nullable=True)
        if done:
            return default if result is None else result
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {self.describe(value)}")
        return value

    def layer_list(self, key: str, layers: int) -> tuple[int, ...] | None:
        """A list of layer indices (moe_layers, mlp_only_layers); None when unset."""
        value = self._doc.get(key)
        if value is None:
            return None
        if not isinstance(value, (list, tuple)):
            raise self.error(key, f"expected an array of layer indices, got {self.describe(value)}")
        out = []
        for item in value:
            index = self._as_int(key, item, "layer indices")
            if not 0 <= index < layers:
                raise self.error(key, f"layer index {index} is outside 0..{layers - 1}")
            out.append(index)
        return tuple(out)

    def flag_list(self, key: str, layers: int) -> tuple[bool, ...] | None:
        """One 0/1 (or boolean) flag per layer, e.g. Llama-4 no_rope_layers; None when unset."""
        value = self._doc.get(key)
        if value is None or value == []:
            return None  # transformers treats an empty list like an absent one here
        if not isinstance(value, (list, tuple)) or len(value) != layers:
            raise self.error(key, f"expected an array of {layers} 0/1 flags, got {self.describe(value)}"
                             + (f" of length {len(value)}" if isinstance(value, (list, tuple)) else ""))
        if any(item not in (0, 1) or isinstance(item, float) for item in value):
            raise self.error(key, "expected only 0/1 flags")
        return tuple(bool(item) for item in value)

    def rope_scaling_type(self) -> str | None:
        value = self._doc.get("rope_scaling")
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.error("rope_scaling", f"expected an object, got {self.describe(value)}")
        kind = value.get("rope_type", value.get("type"))
        if kind is not None and not isinstance(kind, str):
            raise self.error("rope_scaling.rope_type", f"expected a string, got {self.describe(kind)}")
        return kind
