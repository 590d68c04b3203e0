"""Weight sparsity: 2:4 semi-structured on sparse tensor cores, or unstructured with or without a kernel.

It rewrites every GEMM of the decoder blocks (attention, MLP, experts; not the LM head or MoE
routers, which SparseGPT and Wanda leave dense) for weights of b bits (b from the weight precision):

- ``2:4`` (NVIDIA sparse tensor cores; the device needs the "sparse-2-4" feature): every group of
  4 weights keeps 2 values and a 2-bit position index per kept value, the compressed format that
  Mishra et al. describe (arXiv 2104.08378). From first principles: 2 of 4 positions is one of 6
  patterns (log2 6 = 2.6 bits at least); the format spends 2 bits per kept value, i.e. 1 bit (1/8
  byte) per original weight. Per 4 weights: 2b + 2 x 2 bits, so the weights take 0.5 + 1/b of
  their dense bytes (9/16 in fp16, 5/8 in int8). The sparse tensor cores skip the
  zeros: GEMM FLOPs halve at the dense peak (the datasheet's "with sparsity" figure is that
  doubling, never a peak of its own here).
- ``unstructured`` at a ``sparsity`` s (density d = 1 - s), stored CSR-like: each kept value
  carries an ``index_bits`` column index (16 bits address rows up to 65,536 inputs: first
  principles) and each output row a 32-bit offset, so d (b + index_bits) / b + 32 / (k b) of the
  dense bytes for a k-input GEMM. What each kernel choice saves:
  - ``kernel="sparse"`` (a sparse GEMM, e.g. a CPU sparse engine): weight reads and memory take
    the sparse bytes, FLOPs scale by d;
  - ``kernel="load-sparse"`` (Flash-LLM, arXiv 2309.10285: load as sparse, compute as dense on
    tensor cores): weight reads and memory take the sparse bytes, FLOPs stay dense;
  - ``kernel="dense"`` with ``stored_sparse``: memory holds the sparse format, but each GEMM first
    decompresses its weights (reads the sparse format, writes the dense matrix) and then reads the
    dense matrix with dense FLOPs: only memory is saved, and each pass moves more bytes;
  - ``kernel="dense"`` without ``stored_sparse``: the zeros are stored and multiplied: no change.

Not modelled: the efficiency of sparse kernels below their roofline (realised 2:4 speedups are
below 2x: the benchmark calibration's business) and activation sparsity (contextual-sparsity).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.hardware.capabilities import capabilities
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._compression_helpers import gemm_shapes, memory_delta, per_row
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

ROW_POINTER_BITS = 32  # one 32-bit offset per output row of a CSR matrix
INDEX_BITS_2_4 = 2  # position of a kept value among its 4 (the 2:4 format of arXiv 2104.08378)
KERNELS = ("sparse", "load-sparse", "dense")
DENSE_ROWS = ("lm_head", "router")


@dataclass(frozen=True)
class WeightSparsityParams(Params):
    pattern: str = "2:4"  # or "unstructured"
    sparsity: float = 0.5  # fraction of weights removed (2:4 removes exactly half)
    kernel: str = "sparse"
    stored_sparse: bool = True  # only read with kernel="dense"
    index_bits: int = 16

    def validate(self) -> None:
        if self.pattern not in ("2:4", "unstructured"):
            raise InvalidInputError(f"must be '2:4' or 'unstructured', got '{self.pattern}'", field="pattern")
        if not 0.0 < self.sparsity < 1.0:
            raise InvalidInputError(f"must be between 0 and 1 (exclusive), got {self.sparsity}", field="sparsity")
        if self.pattern == "2:4" and self.sparsity != 0.5:
            raise InvalidInputError(f"2:4 removes exactly half the weights, got {self.sparsity}", field="sparsity")
        if self.kernel not in KERNELS:
            raise InvalidInputError(f"must be one of {', '.join(KERNELS)}, got '{self.kernel}'", field="kernel")
        if self.pattern == "2:4" and self.kernel != "sparse":
            raise InvalidInputError("2:4 runs on sparse tensor cores: kernel must be 'sparse'", field="kernel")
        if self.index_bits not in (8, 16, 32):
            raise InvalidInputError(f"must be 8, 16 or 32, got {self.index_bits}", field="index_bits")

    def stored_factor(self, bits: float, k: int) -> float:
        """Sparse-format bytes per dense byte for b-bit weights of a k-input GEMM."""
        if self.pattern == "2:4":
            return 0.5 + INDEX_BITS_2_4 / 2 / bits  # 2 kept values of b bits + 2 indices of 2 bits, per 4
        density = 1.0 - self.sparsity
        return density * (bits + self.index_bits) / bits + ROW_POINTER_BITS / (k * bits)

    def factors(self, bits: float, k: int) -> tuple[float, float, float]:
        """(FLOPs, weight bytes read per pass, resident bytes) per dense value."""
        stored = self.stored_factor(bits, k)
        if self.pattern == "2:4" or self.kernel == "sparse":
            return (0.5 if self.pattern == "2:4" else 1.0 - self.sparsity), stored, stored
        if self.kernel == "load-sparse":
            return 1.0, stored, stored
        if self.stored_sparse:  # decompress per pass: read sparse, write dense, then the GEMM reads dense
            return 1.0, stored + 2.0, stored
        return 1.0, 1.0, 1.0


class WeightSparsity(BaseTechnique):
    id = "weight-sparsity"
    stage = "model"
    summary = "2:4 sparsity on sparse tensor cores, or unstructured sparsity with a sparse or a dense kernel."
    aliases = ("sparse-weights",)
    Params = WeightSparsityParams

    def param_space(self, workload, hardware):
        P = WeightSparsityParams
        # CSR with 16-bit indices only saves memory on 16-bit weights beyond 50% sparsity
        return (P(), P(pattern="unstructured", sparsity=0.7), P(pattern="unstructured", sparsity=0.7,
                                                                kernel="load-sparse"),
                P(pattern="unstructured", sparsity=0.8, kernel="dense"))

    def applicability(self, workload, hardware, params):
        if workload.architecture is None:
            return refuse("the workload carries no architecture to read the GEMM shapes from")
        if workload.weight_dtype not in BYTES_PER_ELEMENT:
            return refuse(f"weights are {workload.weight_dtype}: apply weight-sparsity to plain-precision "
                          "weights (before group-wise quantization or another sparsity)")
        if params.pattern == "2:4" and "sparse-2-4" not in capabilities(hardware):
            return refuse(f"{hardware.id} lists no 2:4 sparse tensor cores (feature 'sparse-2-4')")
        return OK

    def rewrite(self, workload, hardware, params):
        bits = 8.0 * BYTES_PER_ELEMENT[workload.weight_dtype]
        shapes = {n: s for n, s in gemm_shapes(workload.architecture).items() if n not in DENSE_ROWS}
        per_name = {n: params.factors(bits, k) for n, (k, m) in shapes.items()}
        flops, reads, stored = ({n: f[i] for n, f in per_name.items()} for i in range(3))

        def rewrite_table(table):
            mask = [kind == "gemm" for kind in table.kinds]
            keep = lambda values: [v if m else 1.0 for v, m in zip(per_row(table, values), mask)]  # noqa: E731
            return table.replace(flops_base=table.flops_base * keep(flops),
                                 flops_per_context=table.flops_per_context * keep(flops),
                                 weight_bytes=table.weight_bytes * keep(reads))

        before = workload.memory.weight_bytes
        weight_bytes = before + memory_delta(workload, stored)
        label = f"{workload.weight_dtype} " + ("2:4" if params.pattern == "2:4" else f"s{params.sparsity:g}")
        new = with_tables(workload, rewrite_table(workload.prefill.table), rewrite_table(workload.decode.table),
                          weight_dtype=label, memory=replace(workload.memory, weight_bytes=weight_bytes))
        k = shapes["o_proj" if "o_proj" in shapes else "out_proj"][0]
        f, r, s = params.factors(bits, k)
        return new, [
            f"{len(shapes)} GEMM kinds {params.pattern}"
            + ("" if params.pattern == "2:4" else f" at {params.sparsity:.0%} sparsity, kernel '{params.kernel}'")
            + f": FLOPs x{f:.3f}, weight bytes read per pass x{r:.4f}, stored x{s:.4f} "
            f"({bits:.0f}-bit weights, {k}-wide input); LM head and routers stay dense",
            f"weight memory {before / 1e9:.2f} GB -> {weight_bytes / 1e9:.2f} GB",
        ]


PLUGIN = WeightSparsity()
