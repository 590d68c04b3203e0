"""A third-party technique plugin, written the way an outside package would write one.

Vocabulary trimming: an application whose outputs use only part of the vocabulary (a classifier,
a constrained grammar) keeps only those rows of the LM head, so the LM head reads and multiplies
``kept_fraction`` of its weights. It registers through the ``llmeff.techniques`` entry-point group
(see ``pyproject.toml`` in this folder); the tests install it by putting a ``.dist-info`` with that
entry point on ``sys.path``, which is what ``pip install`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmeff.errors import InvalidInputError
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse


@dataclass(frozen=True)
class VocabTrimParams(Params):
    kept_fraction: float = 0.25

    def validate(self) -> None:
        if not 0.0 < self.kept_fraction <= 1.0:
            raise InvalidInputError(f"must be in (0, 1], got {self.kept_fraction}", field="kept_fraction")


class VocabTrim(BaseTechnique):
    id = "vocab-trim"
    stage = "model"
    summary = "Keep only the LM-head rows of the tokens an application can emit."
    Params = VocabTrimParams

    def param_space(self, workload, hardware):
        return (VocabTrimParams(0.5), VocabTrimParams(0.1))

    def applicability(self, workload, hardware, params):
        if "lm_head" not in workload.decode.table.names:
            return refuse("the workload has no lm_head operator")
        return OK

    def rewrite(self, workload, hardware, params):
        def trim(table):
            head = np.array([name == "lm_head" for name in table.names])
            f = params.kept_fraction
            return table.replace(
                flops_base=np.where(head, table.flops_base * f, table.flops_base),
                weight_bytes=np.where(head, table.weight_bytes * f, table.weight_bytes),
            )

        from dataclasses import replace

        new = replace(workload, prefill=replace(workload.prefill, table=trim(workload.prefill.table)),
                      decode=replace(workload.decode, table=trim(workload.decode.table)))
        return new, [f"LM head keeps {params.kept_fraction:.0%} of the vocabulary rows"]


PLUGIN = VocabTrim()
