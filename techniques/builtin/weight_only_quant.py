"""Weight-only quantization (GPTQ, AWQ and kin): weights stored in 8/4/3/2 bits, computed in 16-bit.

Only the bytes change: each weight takes ``bits`` bits plus, per group of ``group_size`` weights,
a 16-bit scale and (asymmetric formats) a ``bits``-bit zero point, as GPTQ and AWQ pack them. The
GEMMs still run in the activation precision (W4A16 dequantizes in the kernel), so the compute peak
is unchanged: the gain is on memory-bound decode.

``bits_per_weight`` overrides that count with a format's published average, for block formats whose
storage is not ``bits`` plus a per-group scale: llama.cpp's GGUF k-quants nest quantized scales in
super-blocks and mix tensor types (Q4_K_M averages 4.8944 bits per weight on Llama-3.1-8B, per
llama.cpp's tools/quantize/README.md). ``group_size`` and ``zero_point`` are then ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from llmeff.errors import InvalidInputError
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._compression_helpers import memory_delta
from llmeff.techniques.builtin._tables import rows_where, scale_rows, with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

SCALE_BITS = 16  # fp16 scales, as GPTQ and AWQ store them


@dataclass(frozen=True)
class WeightOnlyParams(Params):
    bits: int = 4
    group_size: int = 128
    zero_point: bool = True  # asymmetric: a zero point per group, packed in `bits`
    lm_head: bool = False  # AWQ and GPTQ keep the LM head in 16-bit by default
    bits_per_weight: float | None = None  # a format's published average, replacing the count below
    aliases: ClassVar[dict[str, str]] = {"group": "group_size"}

    def validate(self) -> None:
        if self.bits not in (2, 3, 4, 8):
            raise InvalidInputError(f"must be 2, 3, 4 or 8, got {self.bits}", field="bits")
        if not 8 <= self.group_size <= 8192:
            raise InvalidInputError(f"must be between 8 and 8192 weights, got {self.group_size}", field="group_size")
        if self.bits_per_weight is not None and not 0 < self.bits_per_weight < 16:
            raise InvalidInputError(f"must be above 0 and below 16 bits, got {self.bits_per_weight}",
                                    field="bits_per_weight")

    def stored_bits_per_weight(self) -> float:
        """Storage per weight: the override, or ``bits`` plus the group's scale and zero point."""
        if self.bits_per_weight is not None:
            return self.bits_per_weight
        return self.bits + (SCALE_BITS + (self.bits if self.zero_point else 0)) / self.group_size

    def format_label(self) -> str:
        if self.bits_per_weight is not None:
            return f"{self.bits_per_weight:g} bpw"
        return f"int{self.bits} g{self.group_size}"


class WeightOnlyQuant(BaseTechnique):
    id = "weight-only-quant"
    stage = "model"
    summary = ("Weights in 8/4/3/2 bits plus group scales and zero points (or a format's published bits per "
               "weight); compute stays 16-bit (W4A16).")
    aliases = ("weight-quant",)
    Params = WeightOnlyParams

    def param_space(self, workload, hardware):
        return tuple(WeightOnlyParams(bits=b, group_size=g) for b, g in ((8, 128), (4, 128), (4, 64), (3, 128)))

    def applicability(self, workload, hardware, params):
        if BYTES_PER_ELEMENT.get(workload.weight_dtype) != 2:
            return refuse(f"weights are already {workload.weight_dtype}; weight-only quantization starts from 16-bit")
        return OK

    def rewrite(self, workload, hardware, params):
        factor = params.stored_bits_per_weight() / 16.0

        def quantized(name: str, kind: str) -> bool:
            return kind == "gemm" and (params.lm_head or name != "lm_head")

        tables = []
        for phase in (workload.prefill, workload.decode):
            table = phase.table
            tables.append(scale_rows(table, rows_where(table, quantized), weight_bytes=factor))
        table = workload.prefill.table
        quantized_rows = {n: factor for n, k in zip(table.names, table.kinds) if quantized(n, k)}
        weight_bytes = workload.memory.weight_bytes + memory_delta(workload, quantized_rows)
        label = params.format_label()
        new = with_tables(workload, *tables, weight_dtype=label,
                          memory=replace(workload.memory, weight_bytes=weight_bytes))
        kept = "the embedding table stays" if params.lm_head else "LM head and embeddings stay"
        return new, [
            f"GEMM weights stored at {params.stored_bits_per_weight():.3f} bits per weight ({factor:.3f}x the "
            f"16-bit bytes); {kept} 16-bit",
            f"weight memory {workload.memory.weight_bytes / 1e9:.2f} GB -> {weight_bytes / 1e9:.2f} GB; "
            f"GEMMs still compute in {workload.activation_dtype}",
        ]


PLUGIN = WeightOnlyQuant()
