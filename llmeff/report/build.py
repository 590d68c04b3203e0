"""Building a report folder: render in memory, write into a temporary sibling, rename into place.

Nothing in a report depends on when or where it was built, so the same inputs give the same bytes;
``manifest.json`` records those inputs and the files' digests, and ``check_report`` rebuilds from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmeff.errors import InvalidInputError
from llmeff.report.document import Report, markdown, page

MANIFEST = "manifest.json"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BuiltReport:
    path: Path
    files: tuple[str, ...]
    report: Report


@dataclass(frozen=True)
class CheckResult:
    path: Path
    identical: bool
    differences: tuple[str, ...]  # files missing, extra or with other bytes
    changed_inputs: tuple[str, ...]  # why they may differ: inputs that are not what the manifest recorded


def render(report: Report, manifest: dict) -> dict[str, bytes]:
    """Every file of the folder, by name: documents, CSVs, PNGs, and the manifest over all of them."""
    files: dict[str, bytes] = {"report.md": markdown(report).encode(), "report.html": page(report).encode()}
    for table in report.tables:
        files[f"{table.name}.csv"] = table.csv_text().encode()
    for figure in report.figures:
        files[figure.file] = figure.png
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())}
    files[MANIFEST] = (json.dumps({**manifest, "files": digests}, indent=2, sort_keys=True,
                                  ensure_ascii=False) + "\n").encode()
    return dict(sorted(files.items()))


def inputs_record(db, extra: dict) -> dict:
    """What the numbers came from: versions, the shipped data's hash, the registry rows and calibration used."""
    import matplotlib

    from llmeff import __version__
    from llmeff.benchmarks.fits import load_fit, registry_digest
    from llmeff.kb.datafiles import content_hash, default_data_dir

    ids = extra.pop("registry_row_ids", [])
    fit = load_fit(db)
    calibration = None
    if fit is not None:
        parameters = json.dumps(fit.fit.to_json(), sort_keys=True)
        calibration = {"registry_digest": fit.registry_digest,
                       "parameters_sha256": hashlib.sha256(parameters.encode()).hexdigest()[:16]}
    return {"llmeff_version": __version__, "matplotlib_version": matplotlib.__version__,
            "knowledge_base_sha256": content_hash(default_data_dir()),
            "registry_rows_sha256": registry_digest(ids), "calibration": calibration, **extra}


def check_target(out: str | os.PathLike[str], *, force: bool) -> Path:
    """The folder to write: new or empty, or an earlier report that ``force`` allows to replace."""
    target = Path(out).expanduser()
    if target.exists() and not target.is_dir():
        raise InvalidInputError(f"'{target}' is a file, not a folder", field="out")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise InvalidInputError(f"'{target}' is not empty; pass --force to replace the report in it",
                                    field="out")
        if not (target / MANIFEST).is_file():
            # --force replaces a report, never a folder of other files
            raise InvalidInputError(f"'{target}' holds files but no {MANIFEST}: it is not an llmeff report, so it "
                                    "is not replaced even with --force; choose another folder", field="out")
    for parent in target.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InvalidInputError(f"'{parent}' is a file, not a folder", field="out")
            break
    return target


def write_folder(files: dict[str, bytes], target: Path) -> None:
    """Write every file into a temporary sibling folder, then swap it in: a failure leaves nothing."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.building-"))
    old = None
    try:
        umask = os.umask(0)
        os.umask(umask)
        scratch.chmod(0o777 & ~umask)  # mkdtemp makes it private; a report folder is an ordinary folder
        for name, data in files.items():
            (scratch / name).write_bytes(data)
        if target.exists():
            old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
            os.rename(target, old)
        os.rename(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        if old is not None and not target.exists():
            os.rename(old, target)  # put the earlier report back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _ticker(progress: Progress | None, total: int) -> Callable[[], None]:
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress:
            progress(min(done[0], total), total)

    return tick


def build_report(request, out: str | os.PathLike[str], *, db=None, force: bool = False,
                 progress: Progress | None = None) -> BuiltReport:
    """A comparison report (``ReportRequest``) written to ``out``."""
    target = check_target(out, force=force)
    files, report = comparison_files(request, db, progress)
    write_folder(files, target)
    return BuiltReport(target, tuple(files), report)


def comparison_files(request, db, progress: Progress | None = None) -> tuple[dict[str, bytes], Report]:
    from llmeff.report.comparison import comparison_report, figure_count

    request = request.validated()
    cells = len(request.models) * len(request.hardware) * len(request.all_combinations)
    report, extra = comparison_report(request, db, _ticker(progress, cells + 1 + figure_count(request)))
    manifest = {"kind": "comparison", "request": request.to_dict(), "inputs": inputs_record(db, extra)}
    return render(report, manifest), report


def write_plan_report(result, out: str | os.PathLike[str], *, db=None, force: bool = False) -> BuiltReport:
    """The report of a plan already computed (``llmeff plan --report DIR``)."""
    target = check_target(out, force=force)
    files, report = plan_files(result, db)
    write_folder(files, target)
    return BuiltReport(target, tuple(files), report)


def plan_files(result, db) -> tuple[dict[str, bytes], Report]:
    from llmeff.report.plan import plan_report, plan_request_to_dict

    report = plan_report(result, db)
    manifest = {"kind": "plan", "request": plan_request_to_dict(result.request),
                "inputs": inputs_record(db, {})}
    return render(report, manifest), report


def check_report(folder: str | os.PathLike[str], *, db=None, progress: Progress | None = None) -> CheckResult:
    """Rebuild the report in ``folder`` from its manifest and compare every file's bytes."""
    path = Path(folder).expanduser()
    manifest_file = path / MANIFEST
    if not manifest_file.is_file():
        raise InvalidInputError(f"'{path}' has no {MANIFEST}: not an llmeff report folder", field="check")
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
        kind, request_data, recorded = manifest["kind"], manifest["request"], manifest["inputs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"unreadable manifest ({exc})", where=str(manifest_file)) from None
    if kind == "comparison":
        from llmeff.report.request import ReportRequest

        files, _ = comparison_files(ReportRequest.from_dict(request_data, where=str(manifest_file)), db, progress)
    elif kind == "plan":
        from llmeff.planner.search import plan
        from llmeff.report.plan import plan_request_from_dict

        files, _ = plan_files(plan(plan_request_from_dict(request_data, db=db)), db)
    else:
        raise InvalidInputError(f"unknown report kind '{kind}'", where=str(manifest_file), field="kind")
    rebuilt = json.loads(files[MANIFEST])["inputs"]
    changed = tuple(f"{key}: {recorded.get(key)!r} then, {rebuilt.get(key)!r} now"
                    for key in sorted(set(recorded) | set(rebuilt)) if recorded.get(key) != rebuilt.get(key))
    on_disk = {p.name for p in path.iterdir() if p.is_file()}
    differences = []
    for name in sorted(on_disk | set(files)):
        if name not in files:
            differences.append(f"{name}: not part of the rebuilt report")
        elif name not in on_disk:
            differences.append(f"{name}: missing from the folder")
        elif (path / name).read_bytes() != files[name]:
            differences.append(f"{name}: differs")
    return CheckResult(path, not differences, tuple(differences), changed)
