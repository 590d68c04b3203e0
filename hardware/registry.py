"""Hardware registry queries: specs by id or by any name a paper or benchmark table uses."""

from __future__ import annotations

import json

from llmeff.db import resolve_id
from llmeff.hardware.specs import IDEAL, Efficiency, HardwareSpec, Link, Processor


def resolve_hardware_id(conn, wanted: str) -> str:
    return resolve_id(conn, kind="hardware", table="hardware", alias_table="hardwarealias", wanted=wanted)


def _link(kind: str | None, bandwidth: float | None, note: str | None) -> Link | None:
    return Link(kind=kind, bandwidth_bytes_per_s=bandwidth, note=note) if kind else None


def _spec(row, peaks: dict[str, float], aliases: tuple[str, ...]) -> HardwareSpec:
    return HardwareSpec(
        id=row["id"],
        name=row["name"],
        vendor=row["vendor"],
        kind=row["kind"],
        memory_bandwidth_bytes_per_s=row["memory_bandwidth_bytes_per_s"],
        memory_capacity_bytes=row["memory_capacity_bytes"],
        memory_type=row["memory_type"],
        peak_flops_dense=peaks,
        npu_peak_ops_per_s=row["npu_peak_ops_per_s"],
        npu_peak_dtype=row["npu_peak_dtype"],
        vector_fp32_flops=row["vector_fp32_flops"],
        interconnect=_link(row["interconnect_kind"], row["interconnect_bandwidth_bytes_per_s"], row["interconnect_note"]),
        host_link=_link(row["host_link_kind"], row["host_link_bandwidth_bytes_per_s"], row["host_link_note"]),
        on_chip_sram_bytes=row["on_chip_sram_bytes"],
        tdp_watts=row["tdp_watts"],
        release_year=row["release_year"],
        price_usd_per_hour=row["price_usd_per_hour"],
        features=tuple(json.loads(row["features"])),
        efficiency=_efficiency(row),
        executes={dtype: (rate, source) for dtype, (rate, source) in json.loads(row["executes"]).items()},
        extra_processors={name: Processor(name, proc["peaks"], proc.get("note") or "; ".join(proc["sources"]))
                          for name, proc in json.loads(row["processors"]).items()},
        aliases=aliases,
        sources=tuple(json.loads(row["sources"])),
        unverified=tuple(json.loads(row["unverified"])),
        notes=row["notes"],
        source_file=row["source_file"],
    )


def _efficiency(row) -> Efficiency:
    if row["efficiency_source"] is None:
        return IDEAL
    return Efficiency(
        compute_fraction=row["efficiency_compute_fraction"],
        bandwidth_fraction=row["efficiency_bandwidth_fraction"],
        kernel_overhead_s=row["efficiency_kernel_overhead_s"],
        source=row["efficiency_source"],
    )


def hardware_specs(conn, ids: list[str] | None = None) -> list[HardwareSpec]:
    peaks: dict[str, dict[str, float]] = {}
    for row in conn.execute("SELECT hardware_id, dtype, flops_per_s FROM hardwarepeak"):
        peaks.setdefault(row[0], {})[row[1]] = row[2]
    aliases: dict[str, list[str]] = {}
    for row in conn.execute("SELECT hardware_id, display FROM hardwarealias ORDER BY display"):
        aliases.setdefault(row[0], []).append(row[1])
    rows = conn.execute("SELECT * FROM hardware ORDER BY vendor, kind, id")
    specs = [_spec(row, peaks.get(row["id"], {}), tuple(aliases.get(row["id"], []))) for row in rows]
    return specs if ids is None else [s for s in specs if s.id in ids]


def hardware_spec(conn, wanted: str) -> HardwareSpec:
    return hardware_specs(conn, [resolve_hardware_id(conn, wanted)])[0]
