"""Shadow outlier execution (mllm-NPU, arXiv 2407.05858): the GEMMs run in INT8 on the NPU while
the few outlier activation channels are computed in float on the CPU or GPU and added back.

Each layer GEMM on the analysed processor (the LM head stays) becomes two rows:
- on resource "npu", dtype int8: the whole GEMM's FLOPs (per-tensor W8A8: the NPU multiplies every
  channel, outliers clipped), reading the weights as int8 (one byte each);
- ``<name>_outliers`` on ``outlier_processor`` in ``outlier_dtype``: ``outlier_fraction`` f of the
  input channels through the whole output width, 2 n (f k) m FLOPs plus the n m additions that merge
  the result, reading those channels' weight rows (f of the float weights), scanning the float
  input for outliers (n k elements) and reading and writing the output (2 n m), as mllm's
  QNNLinearINT8Shadow kernel does (github.com/UbiquitousLearning/mllm, src/backends/qnn/op; it
  computes in fp32 on the CPU, hence the defaults).
The default f = 0.001 is LLM.int8()'s bound on outlier features: more than 99.9% of values are
multiplied in 8-bit (arXiv 2208.07339, abstract); mllm-NPU's per-tensor scales may flag a
different share: set the measured one. mllm-NPU accelerates the prefill (the paper's subject);
decode keeps its float GEMMs on the CPU/GPU unless ``decode`` is set.

The rows run one after another (the roofline sums them); npu-subgraph-scheduling overlaps the
processors. Memory keeps the float weights (the float operators, the outlier path and a CPU/GPU
decode read them) and adds an int8 copy of the offloaded GEMM weights for the NPU (nothing when
the weights are int8 already). Not modelled: the activation quantize/dequantize kernels (their
bytes are left as the float GEMM's), outliers in the output (the kernel's second path), the
NPU's limited addressable memory, the chunk graphs (chunked-prefill).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from llmeff.errors import InvalidInputError, LlmeffError
from llmeff.precision import BYTES_PER_ELEMENT
from llmeff.techniques.builtin._systems_helpers import (
    EXPERT_ROWS, gemm_shape, gib, order_problem, stored_weight_bytes,
)
from llmeff.techniques.builtin._tables import with_tables
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse
from llmeff.workload.operators import NUMERIC_COLUMNS, OperatorTable

FLOATS = ("fp32", "fp16", "bf16")
EXCLUSIVE = ("tensor-parallel", "pipeline-parallel", "pd-disaggregation")  # one system-on-chip, one device


@dataclass(frozen=True)
class NpuOutlierParams(Params):
    outlier_fraction: float = 0.001  # share of input channels computed in float (LLM.int8(): under 0.1%)
    outlier_processor: str = "cpu"  # where the float outlier path runs: cpu or gpu
    outlier_dtype: str = "fp32"  # mllm's shadow kernel computes in fp32
    decode: bool = False  # also move the decode GEMMs to the NPU (mllm-NPU targets the prefill)

    def validate(self) -> None:
        if not 0.0 < self.outlier_fraction < 1.0:
            raise InvalidInputError(f"must be above 0 and below 1, got {self.outlier_fraction}",
                                    field="outlier_fraction")
        if self.outlier_processor not in ("cpu", "gpu"):
            raise InvalidInputError(f"must be cpu or gpu, got '{self.outlier_processor}'", field="outlier_processor")
        if self.outlier_dtype not in FLOATS:
            raise InvalidInputError(f"must be one of {', '.join(FLOATS)}, got '{self.outlier_dtype}'",
                                    field="outlier_dtype")


class NpuOutlierOffload(BaseTechnique):
    id = "npu-outlier-offload"
    stage = "system"
    summary = "mllm-NPU shadow outliers: GEMMs in INT8 on the NPU, a fraction f of channels in float on the CPU/GPU."
    Params = NpuOutlierParams

    def param_space(self, workload, hardware):
        return (NpuOutlierParams(), NpuOutlierParams(decode=True))

    def applicability(self, workload, hardware, params):
        problem = order_problem(workload, self.id, ("npu-subgraph-scheduling",), EXCLUSIVE)
        if problem:
            return refuse(problem)
        for processor, dtype, role in (("npu", "int8", "the int8 GEMMs"),
                                       (params.outlier_processor, params.outlier_dtype, "the outlier channels")):
            try:
                hardware.processor_rate(processor, dtype)
            except LlmeffError as missing:  # no such processor, or no published peak for the precision
                detail = getattr(missing, "detail", str(missing))
                return refuse(f"{role} need a published {dtype} peak on the {processor}: {detail}")
        if BYTES_PER_ELEMENT.get(workload.weight_dtype, 0) < 1:
            return refuse(f"weights are '{workload.weight_dtype}': shadow outlier execution runs per-tensor int8 "
                          "weights, starting from float or int8 weights")
        if workload.architecture is None or not any(_offloaded(workload.prefill.table, workload.architecture)):
            return refuse("no float GEMM rows on the analysed processor to move to the NPU")
        return OK

    def rewrite(self, workload, hardware, params):
        arch = workload.architecture
        element = BYTES_PER_ELEMENT[workload.weight_dtype]
        phases = [workload.prefill] + ([workload.decode] if params.decode else [])
        tables = {p.name: _split(p, arch, params, element) for p in phases}
        moved = _offloaded(workload.decode.table, arch)
        int8_copy = 0.0 if element == 1 else float(stored_weight_bytes(workload)[moved].sum()) / element
        memory = workload.memory
        new = with_tables(workload, tables["prefill"], tables.get("decode", workload.decode.table),
                          memory=replace(memory, weight_bytes=memory.weight_bytes + int8_copy))
        before = float((workload.prefill.table.flops_base * workload.prefill.table.layers).sum())
        outliers = tables["prefill"]
        float_flops = sum(float(f * n) for name, f, n in zip(outliers.names, outliers.flops_base, outliers.layers)
                          if name.endswith("_outliers"))
        return new, [
            f"{int(moved.sum())} GEMM rows run int8 on the NPU in {' and '.join(p.name for p in phases)}; "
            "the LM head and the float operators stay",
            f"{params.outlier_fraction:g} of the input channels in {params.outlier_dtype} on the "
            f"{params.outlier_processor}: {float_flops / before:.4f} of the prefill FLOPs, including the merge",
            f"weights {gib(memory.weight_bytes)} -> {gib(memory.weight_bytes + int8_copy)} (an int8 copy for the NPU)",
        ]


def _offloaded(table, arch) -> np.ndarray:
    """Float GEMM rows of the layers on the analysed processor (not the LM head)."""
    return np.array([kind == "gemm" and resource == "compute" and name != "lm_head" and dtype in FLOATS
                     and gemm_shape(arch, name) is not None
                     for name, kind, resource, dtype in zip(table.names, table.kinds, table.resources, table.dtypes)])


def _split(phase, arch, params, element: float) -> OperatorTable:
    """Each offloaded GEMM as an int8 NPU row followed by its float outlier row."""
    table = phase.table
    moved, f = _offloaded(table, arch), params.outlier_fraction
    out = params.outlier_dtype
    scalar = BYTES_PER_ELEMENT[out]
    rows = []
    for i in range(len(table)):
        row = {c: float(getattr(table, c)[i]) for c in NUMERIC_COLUMNS}
        text = {"names": table.names[i], "kinds": table.kinds[i], "dtypes": table.dtypes[i],
                "resources": table.resources[i]}
        if not moved[i]:
            rows.append((text, row))
            continue
        int8 = row | {"weight_bytes": row["weight_bytes"] / element}  # one byte per weight
        rows.append((text | {"dtypes": "int8", "resources": "npu"}, int8))
        k, m = gemm_shape(arch, table.names[i])
        # rows of the GEMM's input: the phase's tokens, or the token-expert pairs of a routed expert
        tokens = phase.tokens * (arch.moe.experts_per_token if table.names[i] in EXPERT_ROWS else 1)
        outlier = {c: 0.0 for c in NUMERIC_COLUMNS} | {
            "layers": row["layers"], "context_cap": row["context_cap"],
            "flops_base": f * row["flops_base"] + tokens * m,
            "weight_bytes": f * row["weight_bytes"],
            "activation_bytes_base": tokens * k * scalar + 2.0 * tokens * m * scalar}
        rows.append(({"names": f"{table.names[i]}_outliers", "kinds": "gemm", "dtypes": out,
                      "resources": params.outlier_processor}, outlier))
    texts = {c: tuple(t[c] for t, _ in rows) for c in ("names", "kinds", "dtypes", "resources")}
    numbers = {c: np.array([r[c] for _, r in rows]) for c in NUMERIC_COLUMNS}
    return OperatorTable(**texts, **numbers)


PLUGIN = NpuOutlierOffload()
