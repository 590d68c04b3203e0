"""What a device can do, as capability tags that technique entries require.

Each tag follows from a sourced field of the spec (a peak that a datasheet states, a link it
lists, a feature its sources state), never from the device's name.
"""

from __future__ import annotations

from llmeff.hardware.specs import HardwareSpec

_GPU_KINDS = {"gpu", "soc-gpu"}
_MATMUL_TAGS = {"int8": "int8-matmul", "int4": "int4-matmul", "fp8": "fp8-matmul", "fp4": "fp4-matmul"}


def capabilities(spec: HardwareSpec) -> frozenset[str]:
    tags = set(spec.features)
    if spec.kind in _GPU_KINDS:
        tags.add("gpu")
        if spec.vendor == "nvidia":
            tags.add("nvidia-gpu")
    if spec.kind == "npu" or spec.npu_peak_ops_per_s is not None:
        tags.add("npu")
    for dtype, tag in _MATMUL_TAGS.items():
        if dtype in spec.peak_flops_dense:
            tags.add(tag)
    if spec.interconnect is not None:
        tags.add("multi-device")
    if spec.host_link is not None:
        tags.add("host-link")
    return frozenset(tags)


def missing_capabilities(spec: HardwareSpec, required: tuple[str, ...] | list[str]) -> list[str]:
    have = capabilities(spec)
    return [tag for tag in required if tag not in have]
