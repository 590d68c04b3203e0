"""Weight-activation quantization (W8A8, FP8, W4A8, W4A4, W2A8): GEMMs run at the device's low-precision peak.

What it models, per GEMM row of the model (q/k/v/o, MLP, experts, routers; the LM head only with
``lm_head=True``):
- the row's compute precision becomes int8 (W8A8, and W4A8 as QServe runs it: 4-bit weights
  dequantized to int8 in the main loop; W2A8 for BitNet b1.58's ternary weights packed in 2 bits
  with 8-bit activations), fp8 (W8A8-FP8) or int4 (W4A4, QuaRot/Atom), so the roofline takes that
  precision's published peak;
- weights take ``weight_bits`` plus a 16-bit scale (and, asymmetric, a ``weight_bits`` zero point)
  per group of ``group_size`` weights, or per output channel (k weights) when ``group_size`` is 0;
  a per-tensor scale (FP8, SmoothQuant-O3) costs even less, so per-channel bounds it from above;
- the GEMM's input activations are read at ``activation_bits``, plus one fp16 per-token scale per
  k elements (dynamic per-token quantization, as ZeroQuant, arXiv 2206.01861, and SmoothQuant's O1
  setting, arXiv 2211.10438, do). The quantization
  itself is taken as fused into the kernel that produces the input, whose 16-bit write is kept;
  GEMM outputs stay 16-bit;
- attention, softmax, norms and element-wise rows stay in the activation precision;
- optionally the KV cache in ``kv_bits`` (QServe/QuaRot/Atom KV4), as kv-cache-quant models it.

Not modelled: Atom's 128 outlier channels kept in 8 bits (a few percent of K), QuaRot's online
Hadamard transforms (O(W log W) per token, well below 1% of the layer's GEMM FLOPs) and the
dequantization overhead that QServe (arXiv 2405.04532) reports for W4A4 kernels (20-90%): it is
kernel efficiency, which the benchmark calibration captures, not a roofline term.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError, LlmeffError
from llmeff.techniques.builtin._compression_helpers import (gemm_shapes, is_16_bit, memory_delta, per_row,
                                                            quantize_kv)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

SCALE_BITS = 16  # fp16 scales for weights and per-token activation scales
FORMATS = ("int", "fp")


@dataclass(frozen=True)
class WeightActivationParams(Params):
    weight_bits: int = 8
    activation_bits: int = 8
    number_format: str = "int"  # "fp": FP8 (E4M3) weights and activations
    group_size: int = 0  # 0: one scale per output channel
    zero_point: bool = False  # symmetric by default, as SmoothQuant and FP8
    lm_head: bool = False
    kv_bits: int = 16  # 16 keeps the KV cache as it is
    kv_group_size: int = 128  # asymmetric KV groups of one 128-wide head (QuaRot/Atom KV4)

    def validate(self) -> None:
        if self.weight_bits not in (2, 4, 8):
            raise InvalidInputError(f"must be 2, 4 or 8, got {self.weight_bits}", field="weight_bits")
        if self.activation_bits not in (4, 8):
            raise InvalidInputError(f"must be 4 or 8, got {self.activation_bits}", field="activation_bits")
        if self.activation_bits < self.weight_bits:
            raise InvalidInputError("4-bit activations need 4-bit weights (W4A4); W8A4 has no kernel",
                                    field="activation_bits")
        if self.number_format not in FORMATS:
            raise InvalidInputError(f"must be 'int' or 'fp', got '{self.number_format}'", field="number_format")
        if self.number_format == "fp" and (self.weight_bits, self.activation_bits) != (8, 8):
            raise InvalidInputError("'fp' is FP8: weights and activations both 8-bit", field="number_format")
        if self.group_size and not 8 <= self.group_size <= 8192:
            raise InvalidInputError(f"must be 0 (per channel) or 8..8192 weights, got {self.group_size}",
                                    field="group_size")
        if self.kv_bits not in (16, 8, 4, 2):
            raise InvalidInputError(f"must be 16 (unchanged), 8, 4 or 2, got {self.kv_bits}", field="kv_bits")
        if not 8 <= self.kv_group_size <= 8192:
            raise InvalidInputError(f"must be 8..8192 elements, got {self.kv_group_size}", field="kv_group_size")

    @property
    def compute_dtype(self) -> str:
        if self.number_format == "fp":
            return "fp8"
        return "int4" if self.activation_bits == 4 else "int8"

    @property
    def scheme(self) -> str:
        name = f"W{self.weight_bits}A{self.activation_bits}" + ("-FP8" if self.number_format == "fp" else "")
        return name + (f"KV{self.kv_bits}" if self.kv_bits < 16 else "")

    def weight_factor(self, k: int) -> float:
        """Stored bytes per 16-bit weight byte, for a GEMM with input width k."""
        group = self.group_size or k
        return (self.weight_bits + (SCALE_BITS + (self.weight_bits if self.zero_point else 0)) / group) / 16.0


class WeightActivationQuant(BaseTechnique):
    id = "weight-activation-quant"
    stage = "model"
    summary = "Weights and activations in int8, fp8 or int4 (W8A8, W4A8, W4A4): GEMMs use the low-precision peak."
    aliases = ("w8a8",)
    Params = WeightActivationParams

    def param_space(self, workload, hardware):
        P = WeightActivationParams
        return (P(), P(number_format="fp"), P(weight_bits=4, group_size=128, zero_point=True, kv_bits=4),
                P(weight_bits=4, activation_bits=4, group_size=128, kv_bits=4))

    def applicability(self, workload, hardware, params):
        if workload.architecture is None:
            return refuse("the workload carries no architecture to read the GEMM shapes from")
        for what, dtype in (("weights", workload.weight_dtype), ("activations", workload.activation_dtype)):
            if not is_16_bit(dtype):
                return refuse(f"{what} are already {dtype}; weight-activation quantization starts from 16-bit")
        if params.kv_bits < 16:
            if not is_16_bit(workload.kv_dtype):
                return refuse(f"the KV cache is already {workload.kv_dtype}")
            if workload.architecture.ssm:
                return refuse("the model keeps no KV cache (a Mamba state instead)")
        try:
            hardware.processor_rate(hardware.default_processor(), params.compute_dtype)
        except LlmeffError as missing:
            return refuse(f"{missing}: {params.scheme} runs its GEMMs in {params.compute_dtype}")
        return OK

    def rewrite(self, workload, hardware, params):
        shapes = gemm_shapes(workload.architecture)
        chosen = {n: s for n, s in shapes.items() if n != "lm_head" or params.lm_head}
        weight = {n: params.weight_factor(k) for n, (k, m) in chosen.items()}
        # an input element at activation_bits, plus one fp16 per-token scale per k elements
        scale = {n: params.activation_bits / 16.0 + SCALE_BITS / 16.0 / k for n, (k, m) in chosen.items()}
        dtype = params.compute_dtype

        def rewrite_table(table):
            mask = [kind == "gemm" and name in chosen for name, kind in zip(table.names, table.kinds)]
            # the input's share of the row's activation bytes (all of them where the output is the KV cache)
            inputs = per_row(table, {n: k / (k + m) for n, (k, m) in chosen.items()}, 0.0)
            inputs = [1.0 if table.kv_bytes_base[i] > 0 else inputs[i] for i in range(len(table))]
            act = [1.0 - (inputs[i] * (1.0 - scale[n]) if mask[i] else 0.0) for i, n in enumerate(table.names)]
            return table.replace(
                dtypes=tuple(dtype if m else d for m, d in zip(mask, table.dtypes)),
                weight_bytes=table.weight_bytes * per_row(table, weight),
                activation_bytes_base=table.activation_bytes_base * act,
                activation_bytes_per_context=table.activation_bytes_per_context * act,
            )

        before = workload.memory.weight_bytes
        weight_bytes = before + memory_delta(workload, weight)
        label = (f"{params.number_format}{params.weight_bits}"
                 + (f" g{params.group_size}" if params.group_size else ""))
        new = with_tables(workload, rewrite_table(workload.prefill.table), rewrite_table(workload.decode.table),
                          weight_dtype=label, memory=replace(workload.memory, weight_bytes=weight_bytes),
                          assumptions=workload.assumptions + (
                              f"{params.scheme}: GEMMs in {dtype}, activation quantization fused into the "
                              "producing kernels; attention and norms stay in " + workload.activation_dtype,))
        k0 = shapes["o_proj" if "o_proj" in shapes else "out_proj"][0]
        changes = [
            f"{len(chosen)} GEMM kinds run in {dtype} ({params.scheme}) at the {dtype} peak"
            + ("" if params.lm_head else "; the LM head stays " + workload.activation_dtype),
            f"weights at {16 * params.weight_factor(k0):.3f} bits (e.g. a {k0}-wide input); "
            f"weight memory {before / 1e9:.2f} GB -> {weight_bytes / 1e9:.2f} GB",
            f"GEMM inputs read at {params.activation_bits} bits plus an fp16 scale per token",
        ]
        if params.kv_bits < 16:
            fp = params.number_format == "fp" and params.kv_bits == 8
            new, kv_changes = quantize_kv(new, bits=params.kv_bits, group_size=0 if fp else params.kv_group_size,
                                          zero_point=not fp, number_format="fp" if fp else "int")
            changes += kv_changes
        return new, changes


PLUGIN = WeightActivationQuant()
