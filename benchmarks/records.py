"""Measurement rows read from CSV or JSON files: parsing, validation and their stable identity.

The format is the one of ``../shared/calibration/measurements.csv`` (its README): one measurement
per row; an empty field means the source does not state the value. Every problem names the file,
the row and the field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from llmeff.errors import InvalidInputError

METRIC_UNITS: dict[str, tuple[str, ...]] = {
    "ttft_ms": ("ms",),
    "tpot_ms": ("ms",),
    "e2e_latency_ms": ("ms",),
    "prefill_tokens_per_s": ("tokens/s",),
    "decode_tokens_per_s": ("tokens/s",),
    "throughput_tokens_per_s": ("tokens/s", "tokens/s/GPU"),
    "requests_per_s": ("requests/s",),
    "speedup_x": ("x",),
    "peak_memory_gb": ("GB",),
    "energy_j_per_token": ("J/token",),
}
REQUIRED = ("source_id", "source_locator", "model", "hardware", "device_count", "metric", "value", "unit")
COLUMNS = ("source_id", "source_title", "source_locator", "source_url", "model", "hardware", "device_count", "engine",
           "engine_version", "weight_dtype", "activation_dtype", "kv_dtype", "technique", "batch_size",
           "input_tokens", "output_tokens", "metric", "value", "unit", "notes")


@dataclass(frozen=True)
class MeasurementRow:
    """One row as the file gives it, typed; names are as the source writes them (not yet resolved)."""

    source_id: str
    source_locator: str
    model: str
    hardware: str
    device_count: int
    metric: str
    value: float
    unit: str
    source_title: str | None = None
    source_url: str | None = None
    engine: str | None = None
    engine_version: str | None = None
    weight_dtype: str | None = None
    activation_dtype: str | None = None
    kv_dtype: str | None = None
    technique: str | None = None
    batch_size: int | None = None
    input_tokens: int | None = None  # 0 for llama-bench "tg N" runs (no prompt)
    output_tokens: int | None = None  # 0 for "pp N" runs (prompt only)
    notes: str | None = None

    @property
    def identity(self) -> str:
        """A digest of every field: the same row from the same file is the same measurement."""
        canonical = json.dumps([getattr(self, name) for name in COLUMN_FIELDS], ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:24]

    def to_dict(self) -> dict:
        return asdict(self)


COLUMN_FIELDS = tuple(f.name for f in fields(MeasurementRow))


@dataclass(frozen=True)
class ParsedFile:
    name: str
    rows: tuple[MeasurementRow, ...]


def read_measurement_file(path: str | Path) -> ParsedFile:
    """Parse a .csv or .json measurement file; the first bad row is an error naming row and field."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError("no such file", where=str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", where=str(path)) from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw_rows = _csv_rows(text, str(path))
    elif suffix == ".json":
        raw_rows = _json_rows(text, str(path))
    else:
        raise InvalidInputError(f"unsupported file type '{suffix or path.name}': give a .csv or .json file",
                                where=str(path))
    if not raw_rows:
        raise InvalidInputError("the file holds no measurement rows", where=str(path))
    rows = tuple(parse_row(raw, where=f"{path.name} row {n}") for n, raw in enumerate(raw_rows, start=1))
    return ParsedFile(name=path.name, rows=rows)


def _csv_rows(text: str, where: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InvalidInputError(f"the header lacks the column(s) {', '.join(missing)}", where=where)
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise InvalidInputError(f"unknown column(s) {', '.join(unknown)} (known: {', '.join(COLUMNS)})", where=where)
    rows = []
    for n, row in enumerate(reader, start=1):
        if None in row:  # more fields than the header has
            raise InvalidInputError(f"{len(header) + len(row[None])} fields, the header has {len(header)}",
                                    where=f"{Path(where).name} row {n}")
        rows.append(row)
    return rows


def _json_rows(text: str, where: str) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"not valid JSON ({exc.msg} at line {exc.lineno})", where=where) from None
    if isinstance(data, dict) and isinstance(data.get("measurements"), list):
        data = data["measurements"]  # the shape `llmeff bench export --format json` writes
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise InvalidInputError("expected a list of measurement objects (or {\"measurements\": [...]})", where=where)
    for n, item in enumerate(data, start=1):
        unknown = [k for k in item if k not in COLUMNS]
        if unknown:
            raise InvalidInputError(f"unknown field(s) {', '.join(unknown)}", where=f"{Path(where).name} row {n}")
    return data


def parse_row(raw: dict, *, where: str) -> MeasurementRow:
    """A typed row; blank strings are 'not stated'. Errors name ``where`` and the field."""

    def text(name: str) -> str | None:
        value = raw.get(name)
        if value is None:
            return None
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InvalidInputError(f"expected text, got {value!r}", where=where, field=name)
        value = str(value).strip()
        return value or None

    def required(name: str) -> str:
        value = text(name)
        if value is None:
            raise InvalidInputError("is empty; every row needs it", where=where, field=name)
        return value

    def whole(name: str, *, minimum: int, needed: bool) -> int | None:
        value = required(name) if needed else text(name)
        if value is None:
            return None
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or number != int(number) or number < minimum:
            raise InvalidInputError(f"must be a whole number of at least {minimum}, got {value!r}", where=where,
                                    field=name)
        return int(number)

    metric = required("metric")
    if metric not in METRIC_UNITS:
        raise InvalidInputError(f"unknown metric '{metric}' (known: {', '.join(METRIC_UNITS)})", where=where,
                                field="metric")
    unit = required("unit")
    if unit not in METRIC_UNITS[metric]:
        raise InvalidInputError(f"unit '{unit}' does not fit {metric} (expected {' or '.join(METRIC_UNITS[metric])})",
                                where=where, field="unit")
    value_text = required("value")
    try:
        value = float(value_text.replace(",", ""))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"must be a positive number, got {value_text!r}", where=where, field="value")
    return MeasurementRow(
        source_id=required("source_id"), source_locator=required("source_locator"), model=required("model"),
        hardware=required("hardware"), device_count=whole("device_count", minimum=1, needed=True),
        input_tokens=whole("input_tokens", minimum=0, needed=False),
        output_tokens=whole("output_tokens", minimum=0, needed=False), metric=metric, value=value, unit=unit,
        source_title=text("source_title"), source_url=text("source_url"), engine=text("engine"),
        engine_version=text("engine_version"), weight_dtype=text("weight_dtype"),
        activation_dtype=text("activation_dtype"), kv_dtype=text("kv_dtype"), technique=text("technique"),
        batch_size=whole("batch_size", minimum=1, needed=False), notes=text("notes"),
    )
