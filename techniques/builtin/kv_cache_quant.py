"""KV-cache quantization (KIVI, KVQuant, QServe-style KV4, FP8 KV): the cache is stored in 8/4/3/2 bits.

What it models:
- each cached element takes ``bits`` plus, per group of ``group_size`` elements, a 16-bit scale and
  (asymmetric) a 16-bit minimum, as KIVI stores them (jy-yuan/KIVI, models/llama_kivi.py);
  ``group_size`` 0 is one scale per tensor (FP8 / INT8 KV caches): no per-element overhead;
- decode attention reads the quantized cache (its bytes shrink by the same factor) and spends one
  multiply (symmetric) or a multiply-add (asymmetric) per element read to dequantize it;
- the k/v projections write the new token's K and V quantized; in prefill they also write the
  prompt's cache quantized, while the prompt itself attends to its fresh 16-bit K and V (as KIVI's
  prefill does), so prefill attention reads are unchanged;
- the KV memory footprint and ``kv_bytes_per_token`` shrink by the same factor;
- ``residual_tokens`` R: KIVI keeps the newest tokens in fp16. Its code keeps a sliding window of
  R values (R + 1 read per step with the new token) and flushes keys to low bits in groups of R
  (1..R fp16 keys, (R + 1) / 2 on average over each cycle of R steps); decode rows charge these
  16-bit counts, exact for every context that holds the window (the keys on average over whole
  cycles; the steps of a generation that starts inside the window are charged the whole window);
  each token is written in fp16, later read back and written quantized. The footprint counts R
  fp16 tokens of K and V per layer (the resident window at its largest). A layer whose sliding
  window, or whose whole generation, fits in the residual stays 16-bit.

Not modelled: KVQuant's ~1% sparse fp16 outliers and GEAR's low-rank residual (give their extra
bits through ``bits``/``group_size`` if known), KIVI's per-step copy of the fp16 window (an
implementation detail of its PyTorch code), and the attention kernel's dequantization efficiency.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmeff.errors import InvalidInputError
from llmeff.techniques.builtin._compression_helpers import is_16_bit, kv_bits_per_element, quantize_kv
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse


@dataclass(frozen=True)
class KvQuantParams(Params):
    # KIVI's example setting (jy-yuan/KIVI example.py): 2-bit K and V, groups of 32, 32 fp16 tokens
    bits: int = 2
    group_size: int = 32
    zero_point: bool = True  # asymmetric: KIVI keeps a per-group minimum
    residual_tokens: int = 32
    number_format: str = "int"  # "fp": FP8 (bits=8), one scale per tensor

    def validate(self) -> None:
        if self.bits not in (2, 3, 4, 8):
            raise InvalidInputError(f"must be 2, 3, 4 or 8, got {self.bits}", field="bits")
        if self.group_size and not 8 <= self.group_size <= 8192:
            raise InvalidInputError(f"must be 0 (one scale per tensor) or 8..8192 elements, got {self.group_size}",
                                    field="group_size")
        if not 0 <= self.residual_tokens <= 65536:
            raise InvalidInputError(f"must be 0..65536 tokens, got {self.residual_tokens}", field="residual_tokens")
        if self.number_format not in ("int", "fp"):
            raise InvalidInputError(f"must be 'int' or 'fp', got '{self.number_format}'", field="number_format")
        if self.number_format == "fp" and self.bits != 8:
            raise InvalidInputError("'fp' is the FP8 KV cache: bits must be 8", field="number_format")

    def bits_per_element(self) -> float:
        return kv_bits_per_element(self.bits, self.group_size, self.zero_point)


class KvCacheQuant(BaseTechnique):
    id = "kv-cache-quant"
    stage = "model"
    summary = "KV cache in 8/4/3/2 bits with group scales (and an optional fp16 window): KV bytes and memory shrink."
    aliases = ("kv-quant",)
    Params = KvQuantParams

    def param_space(self, workload, hardware):
        P = KvQuantParams
        return (P(), P(bits=4, group_size=128, residual_tokens=0), P(bits=8, group_size=0, zero_point=False,
                                                                      residual_tokens=0, number_format="fp"),
                P(bits=2, group_size=32, residual_tokens=128))

    def applicability(self, workload, hardware, params):
        if workload.architecture is not None and workload.architecture.ssm:
            return refuse("the model keeps no KV cache (a Mamba state instead)")
        if not is_16_bit(workload.kv_dtype):
            return refuse(f"the KV cache is already {workload.kv_dtype}; KV quantization starts from 16-bit")
        table = workload.decode.table
        if not any(k == "attention" and c > 0 for k, c in zip(table.kinds, table.kv_bytes_per_context)):
            return refuse("no decode operator reads a KV cache")
        return OK

    def rewrite(self, workload, hardware, params):
        new, changes = quantize_kv(workload, bits=params.bits, group_size=params.group_size,
                                   zero_point=params.zero_point and params.group_size > 0,
                                   residual=params.residual_tokens, number_format=params.number_format)
        return new, changes


PLUGIN = KvCacheQuant()
