"""What a user asks the cost model about: batch, lengths and precisions."""

from __future__ import annotations

from dataclasses import dataclass

from llmeff.errors import InvalidInputError
from llmeff.precision import BYTES_PER_ELEMENT, normalise


@dataclass(frozen=True)
class WorkloadRequest:
    """One batch of identical requests. Precisions: weights (storage), activations (compute), KV cache.

    ``activation_dtype`` is the precision GEMMs and attention run in, so it picks the hardware
    peak; ``weight_dtype`` only changes how many bytes the weights take (W4A16 computes in fp16).
    """

    batch: int = 1
    prompt_tokens: int = 512
    output_tokens: int = 128
    weight_dtype: str = "fp16"
    activation_dtype: str = "fp16"
    kv_dtype: str | None = None  # default: the activation precision

    def validated(self, *, max_context: int | None = None) -> "WorkloadRequest":
        """A copy with canonical precision names; bad numbers are one-line errors."""
        for field, value in (("batch", self.batch), ("prompt_tokens", self.prompt_tokens),
                             ("output_tokens", self.output_tokens)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"must be a positive whole number, got {value!r}", field=field)
        # the last generated token is never fed back, so it takes no position: P + N - 1 must fit
        if max_context is not None and self.prompt_tokens + self.output_tokens - 1 > max_context:
            raise InvalidInputError(
                f"prompt ({self.prompt_tokens}) + output ({self.output_tokens}) tokens exceed the model's "
                f"context of {max_context} tokens",
                field="prompt_tokens",
            )
        if {self.weight_dtype, self.activation_dtype, self.kv_dtype or self.activation_dtype} <= BYTES_PER_ELEMENT.keys():
            return self  # already canonical (the planner re-validates the same request often)
        activation = normalise(self.activation_dtype, field="activation_dtype")
        return WorkloadRequest(
            batch=self.batch,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            weight_dtype=normalise(self.weight_dtype, field="weight_dtype"),
            activation_dtype=activation,
            kv_dtype=normalise(self.kv_dtype, field="kv_dtype") if self.kv_dtype else activation,
        )
