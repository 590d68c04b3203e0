"""Vocabularies shared by the data schemas and the read path (no pydantic import here)."""

LEVELS = ("data-level", "model-level", "system-level")
MODELABLE = ("full", "partial", "no")
# Capabilities a technique may require; llmeff.hardware.capabilities derives them for a device.
CAPABILITIES = (
    "gpu",
    "nvidia-gpu",
    "int8-matmul",
    "int4-matmul",
    "fp8-matmul",
    "fp4-matmul",
    "sparse-2-4",
    "npu",
    "fpga",
    "multi-device",
    "host-link",
)
