"""A measurement's configuration, run through the cost model: the workload, and the metric it predicts.

Each row becomes a ``RowCase`` (model, device, engine, workload with the row's techniques applied)
or an ``Unpredictable`` with the reason. Incomplete rows are predicted under an assumption where one
is sound, and the assumption travels with the prediction; rows measured under concurrency carry
queueing a single-pass model cannot predict, so they are flagged and never fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmeff.benchmarks.engines import device_class, engine_family
from llmeff.benchmarks.registry import StoredMeasurement
from llmeff.errors import LlmeffError
from llmeff.hardware.specs import Efficiency, HardwareSpec
from llmeff.roofline import Estimate, estimate
from llmeff.workload.operators import Workload

# When a row leaves a length blank and the metric barely depends on it (decode at a short context is
# bound by reading the weights), it is predicted at this length, and says so.
DEFAULT_LENGTH = 128
MAX_THROUGHPUT_WORDS = ("max-throughput", "max throughput", "peak-throughput", "peak throughput")
CONCURRENCY_WORDS = ("qps", "clients", "concurrent", "concurrency", "request rate")


@dataclass(frozen=True)
class RowCase:
    """A measurement the cost model can predict."""

    measurement: StoredMeasurement
    workload: Workload
    spec: HardwareSpec
    engine: str  # engine family (engines.engine_family)
    device_class: str
    assumptions: tuple[str, ...]

    @property
    def metric(self) -> str:
        return self.measurement.row.metric


@dataclass(frozen=True)
class Unpredictable:
    measurement: StoredMeasurement
    reason: str
    concurrency: bool = False  # measured under concurrent load: flagged, never fitted


def prepare(measurements: list[StoredMeasurement], kb) -> list[RowCase | Unpredictable]:
    """Every measurement as a case or with the reason it cannot be predicted (same order)."""
    builder = _WorkloadBuilder(kb)
    return [_prepare_one(m, builder) for m in measurements]


def metric_value(metric: str, unit: str, result: Estimate) -> float:
    """The number a row's metric reports, from an estimate of its configuration."""
    w = result.workload
    if metric == "ttft_ms":
        return result.ttft_s * 1e3
    if metric == "tpot_ms":
        return result.tpot_s * 1e3
    if metric == "e2e_latency_ms":
        return result.e2e_latency_s * 1e3
    if metric == "decode_tokens_per_s":
        return result.decode_tokens_per_s
    if metric == "prefill_tokens_per_s":
        return w.batch * w.prompt_tokens / result.prefill.time_s
    if metric == "throughput_tokens_per_s":
        per_instance = result.output_tokens_per_s
        return per_instance / w.devices if unit == "tokens/s/GPU" else per_instance
    raise ValueError(f"no prediction for metric '{metric}'")  # prepare() refuses these first


PREDICTABLE_METRICS = ("ttft_ms", "tpot_ms", "e2e_latency_ms", "decode_tokens_per_s", "prefill_tokens_per_s",
                       "throughput_tokens_per_s")


def predict_case(case: RowCase, efficiency: Efficiency) -> float:
    result = estimate(case.workload, case.spec, efficiency=efficiency)
    return metric_value(case.metric, case.measurement.row.unit, result)


# -- turning a row into a case --------------------------------------------------------------------

def _prepare_one(m: StoredMeasurement, builder: "_WorkloadBuilder") -> RowCase | Unpredictable:
    row = m.row
    notes = (row.notes or "").lower()
    if row.metric == "requests_per_s" or any(word in notes for word in CONCURRENCY_WORDS):
        return Unpredictable(m, "measured under concurrent load: includes queueing a single-pass model does not "
                                "predict (flagged, not fitted)", concurrency=True)
    if m.model_id is None:
        return Unpredictable(m, f"model '{row.model}' is not in the model registry" + builder.close("model", row.model))
    if m.hardware_id is None:
        return Unpredictable(m, f"hardware '{row.hardware}' is not in the hardware registry"
                             + builder.close("hardware", row.hardware))
    if row.metric == "speedup_x":
        return Unpredictable(m, "a ratio against a baseline configuration: predict the two configurations' own "
                                "rows instead")
    if row.metric not in PREDICTABLE_METRICS:
        return Unpredictable(m, f"the cost model does not predict {row.metric}")
    from llmeff.benchmarks.labels import UnpredictableLabel, configuration_for

    try:
        config = _with_engine_defaults(configuration_for(row), engine_family(row.engine))
    except UnpredictableLabel as refused:
        return Unpredictable(m, str(refused))
    lengths = _lengths(row)
    if isinstance(lengths, str):
        return Unpredictable(m, lengths)
    prompt, output, length_notes = lengths
    try:
        spec = builder.spec(m.hardware_id)
        batch, batch_notes = _batch(row, builder, m.model_id, spec, config, prompt, output)
        workload = builder.workload(m.model_id, spec, config, batch, prompt, output)
        estimate(workload, spec)  # e.g. a device that publishes no peak for the row's precision
    except LlmeffError as refused:
        return Unpredictable(m, f"the configuration does not build: {refused}")
    return RowCase(m, workload, spec, engine_family(row.engine), device_class(spec),
                   config.assumptions + length_notes + batch_notes)


def _with_engine_defaults(config, engine: str):
    """The row's configuration plus what its engine always does (engines.ENGINE_DEFAULT_TECHNIQUES)."""
    from dataclasses import replace

    from llmeff.benchmarks.engines import ENGINE_DEFAULT_TECHNIQUES

    present = {spec.split(":")[0] for spec in config.techniques}
    added = [(plugin, why) for plugin, why in ENGINE_DEFAULT_TECHNIQUES.get(engine, ()) if plugin not in present]
    if not added:
        return config
    return replace(config, techniques=config.techniques + tuple(plugin for plugin, _ in added),
                   assumptions=config.assumptions + tuple(f"{engine} applies {plugin} by default: {why}"
                                                          for plugin, why in added))


def _lengths(row) -> tuple[int, int, tuple[str, ...]] | str:
    """(prompt, output, assumptions), or the reason the row's lengths cannot be settled."""
    notes: list[str] = []
    metric = row.metric
    prompt, output = row.input_tokens, row.output_tokens
    if prompt == 0:  # llama-bench "tg N": generation from an empty context
        prompt = 1
        notes.append("tg run from an empty context: modelled as a 1-token prompt")
    if output == 0:  # llama-bench "pp N": the prompt only
        output = 1
    if prompt is None:
        if metric in ("decode_tokens_per_s", "tpot_ms"):
            prompt = DEFAULT_LENGTH
            notes.append(f"prompt length not stated: decode predicted after a {DEFAULT_LENGTH}-token prompt")
        else:
            return f"{metric} depends on the prompt length, which the source does not state"
    if output is None:
        if metric in ("ttft_ms", "prefill_tokens_per_s"):
            output = 1
        elif metric in ("decode_tokens_per_s", "tpot_ms"):
            output = DEFAULT_LENGTH
            notes.append(f"output length not stated: decode averaged over {DEFAULT_LENGTH} tokens")
        else:
            return f"{metric} depends on the output length, which the source does not state"
    return prompt, output, tuple(notes)


def _batch(row, builder, model_id, spec, config, prompt, output) -> tuple[int, tuple[str, ...]]:
    if row.batch_size is not None:
        return row.batch_size, ()
    notes = (row.notes or "").lower()
    if row.metric == "throughput_tokens_per_s" and any(word in notes for word in MAX_THROUGHPUT_WORDS):
        from llmeff.benchmarks.engines import INFLIGHT_BATCHING_ENGINES

        engine = engine_family(row.engine)
        if engine in INFLIGHT_BATCHING_ENGINES:
            batch = builder.largest_batch(model_id, spec, config, prompt, max(1, output // 2), in_flight=True)
            return batch, (f"offline max-throughput run with no batch size: the largest batch that fits in memory "
                           f"({batch}) with each sequence holding the mean context's KV cache (prompt + output/2) and "
                           f"one prompt's activations at a time, as {engine} batches in flight over paged KV "
                           f"({INFLIGHT_BATCHING_ENGINES[engine]})",)
        batch = builder.largest_batch(model_id, spec, config, prompt, output)
        return batch, (f"offline max-throughput run with no batch size: the largest batch that fits in "
                       f"memory ({batch})",)
    return 1, ("batch size not stated: a single stream",)


class _WorkloadBuilder:
    """Workloads built once per distinct configuration (many rows share one)."""

    def __init__(self, kb):
        self._kb = kb
        self._specs: dict[str, HardwareSpec] = {}
        self._models: dict[str, object] = {}  # id -> ModelRecord
        self._workloads: dict[tuple, Workload] = {}
        self._techniques: dict[str, tuple] = {}
        self._architectures: dict[str, object] = {}
        self._close: dict[tuple[str, str], str] = {}

    def spec(self, hardware_id: str) -> HardwareSpec:
        self._hardware_records()
        return self._specs[hardware_id] if hardware_id in self._specs else self._kb.hardware(hardware_id)

    def close(self, kind: str, name: str) -> str:
        """' (close: a, b)' naming registry ids near ``name``, or ''."""
        if (kind, name) not in self._close:
            self._close[kind, name] = self._suggest(kind, name)
        return self._close[kind, name]

    def _suggest(self, kind: str, name: str) -> str:
        from llmeff.errors import suggest

        if kind == "hardware":
            self._hardware_records()
            known, aliases = self._specs, {a: s.id for s in self._specs.values() for a in s.aliases}
        else:
            self._model_records()
            known, aliases = self._models, {a: m.id for m in self._models.values() for a in m.aliases}
        found = suggest(name, known, aliases)
        return f" (close: {', '.join(found)})" if found else ""

    def _hardware_records(self) -> None:
        if not self._specs:  # one read of the registry, not one per device
            self._specs = {s.id: s for s in self._kb.hardware_list()}

    def _model_records(self) -> None:
        if not self._models:  # one read of the registry, not one per model
            self._models = {m.id: m for m in self._kb.models()}

    def technique(self, text: str) -> tuple:
        from llmeff.analysis import resolve_technique

        if text not in self._techniques:  # parsing validates parameters by type hints: worth doing once
            self._techniques[text] = resolve_technique(text, self._kb)
        return self._techniques[text]

    def workload(self, model_id: str, spec: HardwareSpec, config, batch: int, prompt: int, output: int) -> Workload:
        key = (model_id, spec.id, config, batch, prompt, output)
        if key not in self._workloads:
            self._workloads[key] = self._build(model_id, spec, config, batch, prompt, output)
        return self._workloads[key]

    def largest_batch(self, model_id: str, spec: HardwareSpec, config, prompt: int, output: int, *,
                      in_flight: bool = False) -> int:
        """Memory is linear in the batch (weights, then KV cache and activations per sequence).

        ``in_flight``: an engine that admits prompts a few at a time holds one prompt's activations,
        whatever the batch; only the KV cache grows with it.
        """
        one = self.workload(model_id, spec, config, 1, prompt, output).memory
        # the KV cache and the prefill activations are per sequence; the weights are not
        per_sequence = one.kv_cache_bytes + (0.0 if in_flight else one.activation_bytes)
        fixed = one.weight_bytes + (one.activation_bytes if in_flight else 0.0)
        capacity = spec.memory_capacity_bytes
        if capacity is None or per_sequence <= 0:
            raise LlmeffError(f"hardware '{spec.id}' lists no memory capacity to size the batch by")
        batch = math.floor((capacity - fixed) / per_sequence)
        if batch < 1:
            raise LlmeffError(f"one sequence does not fit in {spec.id}'s memory")
        return batch

    def _build(self, model_id, spec, config, batch, prompt, output) -> Workload:
        from llmeff.techniques.pipeline import apply_techniques
        from llmeff.workload.build import build_workload
        from llmeff.workload.request import WorkloadRequest

        if model_id not in self._architectures:
            self._model_records()
            record = self._models[model_id] if model_id in self._models else self._kb.model(model_id)
            self._architectures[model_id] = record.architecture()
        request = WorkloadRequest(batch=batch, prompt_tokens=prompt, output_tokens=output,
                                  weight_dtype=config.weight_dtype, activation_dtype=config.activation_dtype,
                                  kv_dtype=config.kv_dtype)
        workload = build_workload(self._architectures[model_id], request, model=model_id)
        chosen = [self.technique(text) for text in config.techniques]
        return apply_techniques(workload, spec, chosen) if chosen else workload
