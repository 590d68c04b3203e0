"""Read and validate the shipped data files (``data/``) into typed, in-memory records.

Parsing is safe (``tomllib``, no eval or pickle). Every problem names the file and the field,
so that ``llmeff db check`` can point a contributor at the line to fix.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from llmeff.errors import DataError
from llmeff.kb import schemas
from llmeff.kb.datafiles import default_data_dir


@dataclass(frozen=True)
class Problem:
    """One defect in a data file: which file, which field, what is wrong."""

    file: str
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: field '{self.field}'" if self.field else self.file
        return f"{where}: {self.message}"

    def to_error(self) -> DataError:
        return DataError(self.message, where=self.file, field=self.field)


@dataclass
class ShippedData:
    """The validated content of a data directory, each record with the file it came from."""

    data_dir: Path
    taxonomy: schemas.TaxonomyFile | None = None
    plugins: schemas.PluginCatalogFile | None = None
    efficiency: schemas.EfficiencyDefaultsFile | None = None
    techniques: dict[str, schemas.TechniqueFile] = field(default_factory=dict)
    hardware: dict[str, schemas.HardwareFile] = field(default_factory=dict)
    models: dict[str, schemas.ModelFile] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # "technique:<id>" -> relative path
    # Ids of files that are valid TOML but break their schema: they still exist for cross-references,
    # so one bad file reports its own problem instead of a dangling reference in every file citing it.
    invalid_ids: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def file_of(self, kind: str, record_id: str) -> str:
        return self.files.get(f"{kind}:{record_id}", "?")


def _field_path(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or None  # type: ignore[return-value]


def _parse(path: Path, schema: type[BaseModel], data_dir: Path) -> tuple[BaseModel | dict | None, list[Problem]]:
    """The validated record; or the raw TOML table with the problems; or None if not TOML at all."""
    rel = path.relative_to(data_dir.parent).as_posix()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        return None, [Problem(rel, None, f"not valid TOML ({exc})")]
    try:
        return schema.model_validate(raw), []
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(rel, _field_path(err["loc"]), message))
        return raw, problems


_KINDS: tuple[tuple[str, str, type[BaseModel]], ...] = (
    ("technique", "techniques", schemas.TechniqueFile),
    ("hardware", "hardware", schemas.HardwareFile),
    ("model", "models", schemas.ModelFile),
)


def load_data(data_dir: Path | None = None) -> ShippedData:
    """Parse and validate every data file; problems are collected, not raised."""
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    shipped = ShippedData(data_dir=data_dir)
    for name, schema, attr in (
        ("taxonomy.toml", schemas.TaxonomyFile, "taxonomy"),
        ("plugins.toml", schemas.PluginCatalogFile, "plugins"),
        ("efficiency.toml", schemas.EfficiencyDefaultsFile, "efficiency"),
    ):
        path = data_dir / name
        if not path.exists():
            shipped.problems.append(Problem(f"{data_dir.name}/{name}", None, "file is missing"))
            continue
        record, problems = _parse(path, schema, data_dir)
        setattr(shipped, attr, None if problems else record)
        shipped.problems.extend(problems)
    for kind, folder, schema in _KINDS:
        registry = getattr(shipped, folder)
        for path in sorted((data_dir / folder).glob("*.toml")):
            record, problems = _parse(path, schema, data_dir)
            shipped.problems.extend(problems)
            if problems:
                if isinstance(record, dict) and isinstance(record.get("id"), str):
                    shipped.invalid_ids.add(record["id"])
                continue
            rel = path.relative_to(data_dir.parent).as_posix()
            if record.id != path.stem:
                shipped.problems.append(Problem(rel, "id", f"'{record.id}' must equal the file name '{path.stem}'"))
            if record.id in registry:
                shipped.problems.append(Problem(rel, "id", f"duplicate {kind} id '{record.id}'"))
                continue
            registry[record.id] = record
            shipped.files[f"{kind}:{record.id}"] = rel
    return shipped


def load_valid_data(data_dir: Path | None = None) -> ShippedData:
    """Like :func:`load_data`, but the first problem (schema or cross-reference) is raised."""
    from llmeff.kb.check import cross_check

    shipped = load_data(data_dir)
    problems = shipped.problems + cross_check(shipped)
    if problems:
        more = f" (and {len(problems) - 1} more problems; run 'llmeff db check')" if len(problems) > 1 else ""
        first = problems[0]
        raise DataError(first.message + more, where=first.file, field=first.field)
    return shipped
