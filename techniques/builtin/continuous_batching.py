"""Continuous (iteration-level) batching (Orca; vLLM, TensorRT-LLM in-flight batching, DeepSpeed-FastGen).

A static batch of ``B`` requests runs until its longest member is done: the workload's
``output_tokens`` is read as that longest output, which is what the baseline times (``B`` slots for
``output_tokens`` tokens). When outputs differ, with mean ``r x output_tokens`` (``mean_to_max_output
= r``), a static batch spends ``1 - r`` of its slot-steps on requests that have already finished
(padding, or a batch that shrinks while each step still reads every weight). An iteration-level
scheduler retires a finished request at the end of the step and admits a waiting one into its slot,
so the decode batch stays at ``B`` (the concurrency limit) and every request leaves after its own
output.

What it models (steady state, queue never empty): each request generates the mix's mean output,
``round(r x output_tokens)`` tokens, so the end-to-end latency and the decode context are those of a
mean request and ``output_tokens_per_s`` counts only useful tokens. The decode step stays the
baseline's step at batch ``B``; the KV footprint stays the reservation for the longest output (paging
it is the paged-kv plugin's business).

What it does not model: arrivals and waiting time (queueing needs a discrete-event simulator), the
prefill of each joining request stalling the running decodes (chunked-prefill bounds that), the
longer average context of a mix with spread-out lengths, and the scheduler's own cost.

``r`` comes from the request mix: for output lengths spread evenly over 1..L it is (L + 1) / (2 L),
about 1/2; for lengths ending at a memoryless stop (each step emits EOS with the same probability,
so lengths are geometric) the longest of ``B`` averages H_B (the harmonic number) times the mean, so
r is about 1 / H_B (first principles: E[max of B exponentials] = H_B x mean).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from llmeff.errors import InvalidInputError
from llmeff.techniques.contract import OK, BaseTechnique, Params, refuse

EVEN_SPREAD = 0.5  # lengths spread evenly over 1..L: mean / max -> 1/2 (first principles)


def geometric_ratio(batch: int) -> float:
    """mean / max of ``batch`` geometric (memoryless-stop) output lengths: 1 / H_batch."""
    return 1.0 / sum(1.0 / i for i in range(1, batch + 1))


@dataclass(frozen=True)
class ContinuousBatchingParams(Params):
    mean_to_max_output: float = EVEN_SPREAD

    def validate(self) -> None:
        if not 0.0 < self.mean_to_max_output <= 1.0:
            raise InvalidInputError(f"must be in (0, 1] (mean over longest output), got {self.mean_to_max_output}",
                                    field="mean_to_max_output")


class ContinuousBatching(BaseTechnique):
    id = "continuous-batching"
    stage = "system"
    summary = "Iteration-level batching: finished requests leave each step and new ones take their slots."
    Params = ContinuousBatchingParams

    def param_space(self, workload, hardware):
        ratios = dict.fromkeys((EVEN_SPREAD, round(geometric_ratio(workload.batch), 4)))
        return tuple(ContinuousBatchingParams(mean_to_max_output=r) for r in ratios if 0.0 < r <= 1.0)

    def applicability(self, workload, hardware, params):
        if workload.batch < 2:
            return refuse("a batch of one request waits for no other request: static and continuous batching "
                          "run the same steps")
        if self._mean(workload, params) == workload.output_tokens:
            return refuse(f"a mean output of {params.mean_to_max_output} x {workload.output_tokens} tokens rounds "
                          "to the longest: a static batch wastes no steps to recover")
        return OK

    @staticmethod
    def _mean(workload, params) -> int:
        return max(1, round(params.mean_to_max_output * workload.output_tokens))

    def rewrite(self, workload, hardware, params):
        longest, batch = workload.output_tokens, workload.batch
        mean = self._mean(workload, params)
        wasted = 1.0 - mean / longest
        new = replace(workload, output_tokens=mean, assumptions=workload.assumptions + (
            f"continuous batching, steady state: requests average {mean} output tokens (longest {longest}); "
            "queueing and prefill stalls of joining requests not modelled",))
        return new, [
            f"static batch of {batch}: all slots run {longest} tokens (the longest output) for a mean of {mean}, "
            f"so {100 * wasted:.1f}% of its slot-steps produce nothing",
            f"iteration-level batching refills a finished slot at the next step: the decode batch stays at {batch} "
            f"and each request leaves after its own output (output_tokens {longest} -> {mean}; end-to-end latency "
            "and throughput are now per mean request)",
            f"useful tokens per decode step rise from {mean / longest:.3f} x {batch} (static) to {batch}: a static "
            f"batch's real output rate is {mean / longest:.3f}x a figure that counts all {longest} steps of every slot "
            "as output; arrivals and waiting time need a queueing simulator",
        ]


PLUGIN = ContinuousBatching()
