"""``llmeff analyze``: the per-operator roofline of one model on one device."""

from __future__ import annotations

from pathlib import Path

import typer

from llmeff import units
from llmeff.cli import render
from llmeff.cli.options import JSON, db_path


def _ms(seconds: float) -> str:
    """A duration in the unit that keeps it short: us below a millisecond, s from a second."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    return f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.3f} s"


def _short(source: str) -> str:
    """The efficiency source's first clause; 'llmeff hardware show' prints it whole."""
    if source.startswith("calibrated"):
        return source  # which fit and which engine the numbers assume: the user must see it whole
    head = source.split(":")[0] if source.startswith("class default") else source
    return head if len(head) <= 90 else head[:89] + "…"


def _band(band, show) -> str:
    return "" if band is None else f"; 80% band {show(band[0])} to {show(band[1])} (calibration residuals)"


def _efficiency(eff, source: str) -> str:
    overheads = "".join(f", +{value * 1e3:.3g} ms per {name}" for name, value in
                        (("step", eff.step_overhead_s), ("request", eff.request_overhead_s)) if value >= 1e-6)
    return (f"compute x{eff.compute_fraction:.3g}, bandwidth x{eff.bandwidth_fraction:.3g}, "
            f"+{eff.kernel_overhead_s * 1e6:.3g} us per kernel{overheads} ({_short(source)})")


def _phase_table(title: str, phase) -> None:
    render.table(
        f"{title} ({phase.context}): per layer; xL layers make the total",
        ["operator", "FLOPs", "weights", "act.", "KV", "FLOP/B", "bound", "time", "xL", "total"],
        [
            (
                op.name,
                units.si(op.flops / op.layers, "", digits=4).strip(),
                units.bytes_(op.weight_bytes / op.layers),
                units.bytes_(op.activation_bytes / op.layers),
                units.bytes_(op.kv_bytes / op.layers),
                f"{op.arithmetic_intensity:.1f}",
                op.bound[:3],
                _ms(op.time_s / op.layers),
                op.layers,
                _ms(op.time_s),
            )
            for op in phase.operators
        ],
        caption="act. = activations; bound: com(pute) or mem(ory). "
        f"Phase total {_ms(phase.time_s)} (pure roofline {_ms(phase.roofline_time_s)}); "
        f"dominant: {', '.join(op.name for op in phase.dominant())}",
    )


def analyze(
    ctx: typer.Context,
    model: str = typer.Option(None, help="Model id or alias from 'llmeff models list'."),
    config: Path = typer.Option(None, help="A Hugging Face config.json instead of --model."),
    hardware: str = typer.Option(..., help="Hardware id or alias from 'llmeff hardware list'."),
    processor: str = typer.Option(None, help="Processor of a system-on-chip (gpu, cpu, npu); default: stated."),
    batch: int = typer.Option(1, help="Sequences processed together."),
    prompt_tokens: int = typer.Option(512, help="Prompt length per sequence."),
    output_tokens: int = typer.Option(128, help="Generated tokens per sequence."),
    weight_dtype: str = typer.Option("fp16", help="Weight storage precision: fp32, fp16, bf16, fp8, int8, int4, fp4."),
    activation_dtype: str = typer.Option("fp16", help="Compute precision; picks the hardware peak."),
    kv_dtype: str = typer.Option(None, help="KV-cache precision (default: the activation precision)."),
    decode_context: int = typer.Option(None, help="Also show one decode step at this context length."),
    technique: list[str] = typer.Option(
        [], "--technique", "-t",
        help="Apply a technique: a plugin or knowledge-base id, with parameters after ':' "
        "(e.g. weight-only-quant:bits=4,group_size=128). Repeatable; applied in stage order.",
    ),
    engine: str = typer.Option(None, help="Engine the calibration's factors are taken for (after llmeff bench "
                                          "calibrate; default: stated)."),
    uncalibrated: bool = typer.Option(False, "--uncalibrated", help="Ignore the stored calibration."),
    json: bool = JSON,
) -> None:
    """Roofline analysis per operator for prefill and decode, with TTFT, TPOT, throughput and memory.

    Example: llmeff analyze --model llama-2-7b --hardware a100-sxm4-80gb --batch 8 --prompt-tokens 1024 --output-tokens 256
    --technique weight-only-quant:bits=4,group_size=128 --technique flash-attention
    """
    from llmeff.analysis import AnalysisRequest
    from llmeff.analysis import analyze as run
    from llmeff.workload.request import WorkloadRequest

    result = run(
        AnalysisRequest(
            hardware=hardware,
            model=model,
            config=config,
            processor=processor,
            workload=WorkloadRequest(batch, prompt_tokens, output_tokens, weight_dtype, activation_dtype, kv_dtype),
            decode_context=decode_context,
            techniques=tuple(technique),
            db=db_path(ctx),
            engine=engine,
            calibrated=not uncalibrated,
        )
    )
    if json:
        render.emit_json(result.to_dict())
        return
    e = result.estimate
    w = e.workload
    processor_note = " (default)" if result.processor_is_default else ""
    render.fields(
        f"{result.model} on {result.hardware_name} [{e.hardware_id}]",
        [
            ("request", f"batch {w.batch}, prompt {w.prompt_tokens}, output {w.output_tokens} tokens; weights "
                        f"{w.weight_dtype}, activations {w.activation_dtype}, KV {w.kv_dtype}"),
            ("processor", f"{e.roof.processor}{processor_note}"),
            ("roof", f"{units.flops(e.roof.peak_flops)} {e.dtype} peak, {units.bandwidth(e.roof.bandwidth_bytes_per_s)}; "
                     f"ridge point {e.roof.ridge_point:.1f} FLOP/byte"),
            ("peak used", None if e.roof.peak_source is None else
             f"{e.dtype} runs at the published {e.roof.peak_dtype} rate ({e.roof.peak_source})"),
            ("efficiency", _efficiency(e.roof.efficiency, result.efficiency_source)),
        ],
    )
    for applied in w.applied:
        settings = ", ".join(f"{k}={v}" for k, v in applied.params.items())
        render.bullet_list(f"Technique {applied.id} ({settings})", applied.changes)
    _phase_table("Prefill", e.prefill)
    _phase_table("Decode, per step", e.decode)
    if result.decode_at_context is not None:
        _phase_table("Decode step", result.decode_at_context)
    m = e.memory
    verdict = {None: "capacity unknown for this device", True: "fits", False: "DOES NOT FIT"}[m.fits]
    render.fields(
        "Totals",
        [
            ("time to first token", f"{_ms(e.ttft_s)} (pure roofline {_ms(e.roofline_ttft_s)})"
                                    + _band(result.band("ttft_ms", e.ttft_s), _ms)),
            ("time per output token", f"{_ms(e.tpot_s)} (pure roofline {_ms(e.roofline_tpot_s)})"
                                      + _band(result.band("tpot_ms", e.tpot_s), _ms)),
            ("end-to-end latency", _ms(e.e2e_latency_s)),
            ("throughput", f"{e.output_tokens_per_s:,.1f} output tokens/s ({e.decode_tokens_per_s:,.1f} in decode)"),
            ("memory", f"weights {units.bytes_(m.footprint.weight_bytes)} + KV cache "
                       f"{units.bytes_(m.footprint.kv_cache_bytes)} + activations "
                       f"{units.bytes_(m.footprint.activation_bytes)} = {units.bytes_(m.footprint.total_bytes)} of "
                       f"{units.bytes_(m.capacity_bytes)}: {verdict}"),
        ],
    )
    render.bullet_list("Assumptions", w.assumptions)
