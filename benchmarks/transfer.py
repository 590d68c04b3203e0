"""``llmeff db copy``: move what users measured between registries (a laptop and the team's server).

What travels is what a rebuild keeps: user-imported measurements and the stored calibration. Each
row keeps its stable identity (the measurement's digest, the calibration's id), so a row the other
side already holds is skipped, by the database's own constraint, and copying twice adds nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from llmeff.errors import InvalidInputError


@dataclass(frozen=True)
class CopyResult:
    source: str  # where the rows came from (a file, or a URL with its password masked)
    target: str
    measurements_copied: int
    measurements_skipped: int  # already in the target under the same identity
    calibrations_copied: int
    calibrations_skipped: int


def copy_user_rows(source: str | os.PathLike[str] | None, target: str | os.PathLike[str] | None) -> CopyResult:
    """Copy the user-origin measurements and the calibration of ``source`` into ``target``, in one transaction.

    Both are built first if needed (a new team server gets the schema and the shipped data).
    """
    from sqlalchemy import select

    from llmeff import backend
    from llmeff import db as database
    from llmeff.benchmarks.ingest import insert_new
    from llmeff.benchmarks.tables import Calibration, Measurement

    source_at, target_at = database.ensure_database(source), database.ensure_database(target)
    if source_at.sqlalchemy_url() == target_at.sqlalchemy_url():
        raise InvalidInputError(f"the source and the target are the same database ({source_at.display()})")
    measurements = Measurement.__table__  # type: ignore[attr-defined]
    calibrations = Calibration.__table__  # type: ignore[attr-defined]
    with backend.database_errors(source_at), backend.engine(source_at).connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(select(measurements).where(measurements.c.origin == "user")).all()
        fits = conn.execute(select(calibrations)).all()
    with backend.write_transaction(target_at) as conn:
        copied = insert_new(conn, rows, table=measurements) if rows else set()
        fits_copied = insert_new(conn, fits, table=calibrations) if fits else set()
    return CopyResult(source=source_at.display(), target=target_at.display(),
                      measurements_copied=len(copied), measurements_skipped=len(rows) - len(copied),
                      calibrations_copied=len(fits_copied), calibrations_skipped=len(fits) - len(fits_copied))
