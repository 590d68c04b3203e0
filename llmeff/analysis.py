"""``llmeff.analyze``: one model, one device, one request batch, through the roofline."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from llmeff.errors import InvalidInputError
from llmeff.roofline import Estimate, PhaseEstimate, decode_at, estimate
from llmeff.serialize import to_jsonable
from llmeff.workload.build import build_workload
from llmeff.workload.request import WorkloadRequest


@dataclass(frozen=True)
class AnalysisRequest:
    """What to analyze. Give ``model`` (a registry id or alias) or ``config`` (a config.json path)."""

    hardware: str
    model: str | None = None
    config: str | os.PathLike[str] | None = None
    processor: str | None = None  # default: the processor a user would pick (see HardwareSpec)
    workload: WorkloadRequest = field(default_factory=WorkloadRequest)
    decode_context: int | None = None  # also show one decode step at this context length
    techniques: tuple[str, ...] = ()  # "plugin-or-technique-id[:name=value,...]", applied in stage order
    db: str | os.PathLike[str] | None = None
    # the engine the calibration's factors are taken for (default: stated); unused before `bench calibrate`
    engine: str | None = None
    calibrated: bool = True  # use the stored calibration, if any


@dataclass(frozen=True)
class Analysis:
    model: str
    hardware_name: str
    processor_is_default: bool
    efficiency_source: str
    estimate: Estimate
    decode_at_context: PhaseEstimate | None = None
    # with a stored calibration: per metric, where 80% of measurements fall around a prediction
    bands: dict[str, tuple[float, float]] | None = None

    def band(self, metric: str, predicted: float) -> tuple[float, float] | None:
        """The (low, high) range the calibration's left-out residuals put around ``predicted``."""
        if not self.bands or metric not in self.bands:
            return None
        import math

        low_log, high_log = self.bands[metric]  # quantiles of log(predicted / measured)
        return predicted * math.exp(-high_log), predicted * math.exp(-low_log)

    def to_dict(self) -> dict:
        """The JSON form: every operator row plus the totals (sorted keys via llmeff.serialize)."""
        e = self.estimate
        w = e.workload

        def phase(p: PhaseEstimate) -> dict:
            return {
                "context": p.context,
                "flops": p.flops,
                "bytes": p.bytes,
                "time_s": p.time_s,
                "roofline_time_s": p.roofline_time_s,
                # each operator's figures cover all the layers that run it; *_per_layer divide by them
                "operators": [
                    {**to_jsonable(op), "bytes": op.bytes, "flops_per_layer": op.flops / op.layers,
                     "bytes_per_layer": op.bytes / op.layers, "time_per_layer_s": op.time_s / op.layers}
                    for op in p.operators
                ],
                "dominant": [op.name for op in p.dominant()],
            }

        memory = e.memory.footprint
        return {
            "model": self.model,
            "hardware": e.hardware_id,
            "processor": e.roof.processor,
            "processor_is_default": self.processor_is_default,
            "request": {
                "batch": w.batch, "prompt_tokens": w.prompt_tokens, "output_tokens": w.output_tokens,
                "weight_dtype": w.weight_dtype, "activation_dtype": w.activation_dtype, "kv_dtype": w.kv_dtype,
            },
            "roof": {
                "compute_dtype": e.dtype,
                "peak_flops": e.roof.peak_flops,
                "peak_dtype": e.roof.peak_dtype,
                "peak_source": e.roof.peak_source,
                "bandwidth_bytes_per_s": e.roof.bandwidth_bytes_per_s,
                "ridge_point_flop_per_byte": e.roof.ridge_point,
                "efficiency": to_jsonable(e.roof.efficiency),
            },
            "prefill": phase(e.prefill),
            "decode": phase(e.decode),
            "decode_at_context": phase(self.decode_at_context) if self.decode_at_context else None,
            "totals": {
                "ttft_s": e.ttft_s,
                "tpot_s": e.tpot_s,
                "e2e_latency_s": e.e2e_latency_s,
                "output_tokens_per_s": e.output_tokens_per_s,
                "roofline_ttft_s": e.roofline_ttft_s,
                "roofline_tpot_s": e.roofline_tpot_s,
            },
            "memory": {
                "weight_bytes": memory.weight_bytes,
                "kv_cache_bytes": memory.kv_cache_bytes,
                "activation_bytes": memory.activation_bytes,
                "total_bytes": memory.total_bytes,
                "capacity_bytes": e.memory.capacity_bytes,
                "fits": e.memory.fits,
                "kv_bytes_per_token": w.kv_bytes_per_token,
            },
            "assumptions": list(w.assumptions),
            "calibration_bands": {
                "ttft_s": self.band("ttft_ms", e.ttft_s), "tpot_s": self.band("tpot_ms", e.tpot_s),
                "output_tokens_per_s": self.band("throughput_tokens_per_s", e.output_tokens_per_s),
            } if self.bands else None,
            "techniques": [to_jsonable(a) for a in w.applied],
            "devices": w.devices,
            "decode_tokens_per_step": w.decode_tokens_per_step,
        }


def resolve_technique(text: str, kb) -> tuple:
    """``text`` names a plugin (or a plugin alias), or a knowledge-base technique whose entry links one.

    ``'weight-only-quant:bits=4,group_size=128'``, ``'flash-attention'`` (a KB entry) and ``'AWQ'`` (a KB
    alias) all resolve; parameters after ':' go to the plugin.
    """
    from llmeff.errors import TechniqueNotApplicableError, UnknownIdError
    from llmeff.techniques.pipeline import parse_technique
    from llmeff.techniques.registry import get_plugin

    name, sep, settings = text.partition(":")
    try:
        return parse_technique(text)
    except UnknownIdError as plugin_miss:
        try:
            entry = kb.technique(name.strip())
        except UnknownIdError:
            raise plugin_miss from None
    plugin_id = entry.summary.plugin
    if plugin_id is None:
        why = (f"it is captured by the {entry.summary.captured_by} record" if entry.summary.captured_by
               else entry.modelable_reason)
        raise TechniqueNotApplicableError(f"technique '{entry.summary.id}' has no cost-model plugin: {why}")
    try:
        get_plugin(plugin_id)
    except UnknownIdError:
        raise TechniqueNotApplicableError(
            f"technique '{entry.summary.id}' links to the plugin '{plugin_id}', which is planned but not installed"
        ) from None
    # the entry's own settings (AWQ: bits=4, group_size=128), then what the user wrote
    defaults = ",".join(f"{k}={v}" for k, v in entry.plugin_params.items())
    return parse_technique(plugin_id + ":" + ",".join(x for x in (defaults, settings) if x))


def _load_model(kb, model: str | None, config) -> tuple:
    """(Architecture, label) from a registry id or alias, or from a config.json path: exactly one of them."""
    from llmeff.architectures import load_config_file

    if (model is None) == (config is None):
        raise InvalidInputError("give a model id or a config.json path (one of the two)", field="model")
    if model is not None:
        record = kb.model(model)
        return record.architecture(), record.id
    return load_config_file(config), Path(config).as_posix()


def analyze(request: AnalysisRequest) -> Analysis:
    """Build the workload of the model and run it through the device's roofline."""
    from llmeff.kb.api import open_kb

    with open_kb(request.db) as kb:
        spec = kb.hardware(request.hardware)
        arch, label = _load_model(kb, request.model, request.config)
        chosen = [resolve_technique(text, kb) for text in request.techniques]
    if request.calibrated:
        from llmeff.benchmarks.fits import calibrated_spec, stored_bands

        spec = calibrated_spec(request.db, spec, request.engine)
        bands = stored_bands(request.db) if spec.efficiency.source.startswith("calibrated") else None
    else:
        bands = None
    workload = build_workload(arch, request.workload, model=label)
    if chosen:
        from llmeff.techniques.pipeline import apply_techniques

        workload = apply_techniques(workload, spec, chosen)
    result = estimate(workload, spec, processor=request.processor)
    at_context = None
    if request.decode_context is not None:
        at_context = decode_at(workload, spec, request.decode_context, processor=request.processor)
    return Analysis(
        model=label,
        hardware_name=spec.name,
        processor_is_default=request.processor is None,
        efficiency_source=result.roof.efficiency.source,
        estimate=result,
        decode_at_context=at_context,
        bands=bands,
    )
