"""``llmeff hardware``: the device registry."""

from __future__ import annotations

import typer

from llmeff import units
from llmeff.cli import render
from llmeff.cli.options import JSON, db_path

app = typer.Typer(help="Browse the hardware registry.", no_args_is_help=True)

_SHOWN_DTYPES = ("fp16", "bf16", "fp8", "int8", "int4")


def _kb(ctx: typer.Context):
    from llmeff.kb.api import open_kb

    return open_kb(db_path(ctx))


@app.command("list")
def list_(
    ctx: typer.Context,
    kind: str = typer.Option(None, help="gpu, soc-gpu, npu, tpu, accelerator or cpu."),
    vendor: str = typer.Option(None, help="nvidia, amd, intel, google, apple or qualcomm."),
    json: bool = JSON,
) -> None:
    """List devices with memory, bandwidth and dense peaks ('-' = no published figure).

    Example: llmeff hardware list --vendor nvidia
    """
    with _kb(ctx) as kb:
        specs = kb.hardware_list(kind=kind, vendor=vendor)
    if json:
        render.emit_json(specs)
        return
    render.table(
        f"{len(specs)} devices",
        ["id", "kind", "memory", "bandwidth", *_SHOWN_DTYPES],
        [
            (
                s.id,
                s.kind,
                units.bytes_(s.memory_capacity_bytes),
                units.bandwidth(s.memory_bandwidth_bytes_per_s),
                *(f"{s.peak_flops_dense[d] / 1e12:.4g}" if d in s.peak_flops_dense else "-" for d in _SHOWN_DTYPES),
            )
            for s in specs
        ],
        caption="Dense peaks in TFLOP/s (TOP/s for int); '-' = no published figure. All fields: llmeff hardware show ID",
    )


def _link(link) -> str | None:
    if link is None:
        return None
    note = f" ({link.note})" if link.note else ""
    return f"{link.kind} {units.bandwidth(link.bandwidth_bytes_per_s)}{note}"


@app.command()
def show(ctx: typer.Context, hardware_id: str = typer.Argument(..., help="Id or alias, e.g. 'A100 80GB'."), json: bool = JSON) -> None:
    """Show one device: peaks and ridge points per precision, memory, links, sources.

    Example: llmeff hardware show h100-sxm-80gb
    """
    from llmeff.hardware.capabilities import capabilities

    with _kb(ctx) as kb:
        spec = kb.hardware(hardware_id)
    if json:
        render.emit_json({"spec": spec, "capabilities": capabilities(spec)})
        return
    render.fields(
        f"{spec.name} [{spec.id}]",
        [
            ("vendor / kind", f"{spec.vendor} / {spec.kind}"),
            ("aliases", ", ".join(spec.aliases)),
            ("memory", f"{units.bytes_(spec.memory_capacity_bytes)} {spec.memory_type or ''}"),
            ("memory bandwidth", units.bandwidth(spec.memory_bandwidth_bytes_per_s)),
            ("on-chip SRAM", units.bytes_(spec.on_chip_sram_bytes)),
            ("NPU peak", units.si(spec.npu_peak_ops_per_s, "OP/s") if spec.npu_peak_ops_per_s else None),
            ("interconnect", _link(spec.interconnect)),
            ("host link", _link(spec.host_link)),
            ("TDP", f"{spec.tdp_watts:g} W" if spec.tdp_watts else None),
            ("released", spec.release_year),
            ("capabilities", ", ".join(sorted(capabilities(spec)))),
            ("processors", ", ".join(f"{name}{' (default)' if name == spec.default_processor() else ''}"
                                     for name in spec.processors())),
            ("efficiency", f"compute x{spec.efficiency.compute_fraction:g}, bandwidth "
                           f"x{spec.efficiency.bandwidth_fraction:g}, +{spec.efficiency.kernel_overhead_s * 1e6:g} us "
                           f"per kernel: {spec.efficiency.source}"),
            ("notes", spec.notes),
            ("data file", spec.source_file),
        ],
    )
    if spec.peak_flops_dense:
        render.table(
            "Dense peaks and ridge points",
            ["precision", "peak", "ridge point (FLOP/byte)"],
            [
                (dtype, units.flops(peak), f"{spec.ridge_point(dtype):.1f}")
                for dtype, peak in sorted(spec.peak_flops_dense.items(), key=lambda kv: -kv[1])
            ],
        )
    else:
        render.console.print("[yellow]No published dense peak for any precision: a roofline needs one.[/yellow]")
    render.bullet_list("Sources", spec.sources)
    render.bullet_list("Unverified", spec.unverified)
