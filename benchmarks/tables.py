"""SQLModel tables of the benchmark registry: measurements and calibration fits.

Unlike the knowledge base's shipped tables, these survive a rebuild: a rebuild replaces only the
rows whose ``origin`` is ``shipped`` (the built-in registry in ``data/measurements/``), never what a
user imported, and never a calibration a user fitted.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class Measurement(SQLModel, table=True):
    """One published or user-measured number, with the configuration it was measured under."""

    id: str = Field(primary_key=True)  # stable identity: a digest of the row's fields (re-imports add nothing)
    origin: str = Field(index=True)  # "shipped" or "user"
    imported_from: str  # the file's name
    row_number: int  # its data row in that file (1 = first row after the header)
    source_id: str = Field(index=True)
    source_title: str | None = None
    source_locator: str
    source_url: str | None = None
    model_name: str  # as the source writes it
    model_id: str | None = Field(default=None, index=True)  # resolved through the registry's aliases
    hardware_name: str
    hardware_id: str | None = Field(default=None, index=True)
    device_count: int
    engine: str | None = Field(default=None, index=True)
    engine_version: str | None = None
    weight_dtype: str | None = None
    activation_dtype: str | None = None
    kv_dtype: str | None = None
    technique: str | None = None  # ';'-separated labels, as in the file
    batch_size: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    metric: str = Field(index=True)
    value: float
    unit: str
    notes: str | None = None


class Calibration(SQLModel, table=True):
    """One fit of the cost model's efficiency terms, with what it was fitted on and how well."""

    id: str = Field(primary_key=True)  # "default": the fit predictions use
    registry_digest: str  # digest of the measurement ids it was fitted on
    parameters: str  # JSON: device-class and engine factors, overheads
    rows: str  # JSON: [[measurement id, residual in log space], ...]
    summary: str  # JSON: fit error and, when asked for, the hold-out error


BENCHMARK_TABLES = (Measurement, Calibration)
