"""Storing and loading the calibration predictions use (the ``Calibration`` table, id 'default')."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import closing
from dataclasses import dataclass

from llmeff.benchmarks.calibrate import Fit

DEFAULT_ID = "default"


@dataclass(frozen=True)
class StoredFit:
    fit: Fit
    registry_digest: str  # of the measurement ids it was fitted on
    rows: list  # [[measurement id, log(predicted / measured)], ...]
    summary: dict  # fit error, hold-out error and residual bands


def registry_digest(measurement_ids) -> str:
    return hashlib.sha256("\n".join(sorted(measurement_ids)).encode()).hexdigest()[:16]


def save_fit(db: str | os.PathLike[str] | None, stored: StoredFit) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from llmeff import backend
    from llmeff import db as database
    from llmeff.benchmarks.tables import Calibration

    location = database.ensure_database(db)
    table = Calibration.__table__  # type: ignore[attr-defined]
    values = {"id": DEFAULT_ID, "registry_digest": stored.registry_digest,
              "parameters": json.dumps(stored.fit.to_json(), sort_keys=True), "rows": json.dumps(stored.rows),
              "summary": json.dumps(stored.summary, sort_keys=True)}
    dialect = sqlite if location.is_sqlite else postgresql
    # one statement replaces the old fit, so two calibrations at once end with one of them, not an error
    statement = dialect.insert(table).values(values)
    statement = statement.on_conflict_do_update(index_elements=["id"],
                                                set_={k: statement.excluded[k] for k in values if k != "id"})
    with backend.write_transaction(location) as conn:
        conn.execute(statement)


def load_fit(db: str | os.PathLike[str] | None = None) -> StoredFit | None:
    """The stored calibration, or None when `llmeff bench calibrate` has not run on this database."""
    from llmeff import db as database

    with closing(database.connect(db)) as conn:
        row = conn.execute("SELECT registry_digest, parameters, rows, summary FROM calibration WHERE id = ?",
                           (DEFAULT_ID,)).fetchone()
    if row is None:
        return None
    return StoredFit(Fit.from_json(json.loads(row[1])), row[0], json.loads(row[2]), json.loads(row[3]))


def stored_bands(db) -> dict[str, tuple[float, float]] | None:
    """Per metric, the 10th and 90th percentile of log(predicted / measured) the stored fit left."""
    stored = load_fit(db)
    if stored is None or not stored.summary.get("bands"):
        return None
    return {metric: tuple(pair) for metric, pair in stored.summary["bands"].items()}


def calibrated_spec(db, spec, engine: str | None = None):
    """``spec`` with the stored calibration's efficiency for it under ``engine``; unchanged when none is stored.

    With no engine named, the prediction assumes the fitted engine with the most rows on the device's
    class, and its efficiency source says so.
    """
    from dataclasses import replace

    from llmeff.benchmarks.engines import UNNAMED_ENGINE, device_class, engine_family

    stored = load_fit(db)
    if stored is None:
        return spec
    klass = device_class(spec)
    if engine:
        family, why = engine_family(engine), f"engine '{engine}'"
    else:
        family = stored.fit.default_engine(klass) or UNNAMED_ENGINE
        why = f"engine not named: assuming '{family}', the fitted engine with the most rows on class '{klass}'"
    efficiency, which = stored.fit.efficiency_for(spec, klass, family)
    return replace(spec, efficiency=replace(efficiency, source=f"calibrated by llmeff bench calibrate ({why}): "
                                                                f"{which}"))
