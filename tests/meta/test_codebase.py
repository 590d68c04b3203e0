"""Rules of the codebase that are easy to break without noticing (see ../shared/design.md)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("llmeff", "kb", "techniques", "hardware", "benchmarks", "cli")
BARE_NAMES = {"kb", "techniques", "hardware", "benchmarks", "cli", "data"}


def _python_files():
    for folder in PACKAGE_DIRS + ("tests",):
        yield from (ROOT / folder).rglob("*.py")


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_sub_packages_are_imported_through_llmeff_only():
    # A bare `import kb` would resolve from the repo root and define every table twice.
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _python_files()
        for name in _imports(path)
        if name.split(".")[0] in BARE_NAMES
    ]
    assert offenders == []


def test_only_the_cli_imports_typer_and_rich():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in ("llmeff", "kb", "techniques", "hardware", "benchmarks")
        for path in (ROOT / folder).rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] in {"typer", "rich", "click"}
    ]
    assert offenders == []


def test_only_the_report_package_imports_matplotlib():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in PACKAGE_DIRS
        for path in (ROOT / folder).rglob("*.py")
        for name in _imports(path)
        if name.split(".")[0] == "matplotlib" and "report" not in path.relative_to(ROOT).parts[:2]
    ]
    assert offenders == []


def test_listing_commands_do_not_load_heavy_libraries(kb_path):
    # A listing on an up-to-date database runs on stdlib sqlite3: no ORM, no data schemas, no pandas.
    # (pydantic itself is not checked: Typer >= 0.2x imports it for its own parameter handling.)
    code = (
        "import sys; from llmeff.cli.app import main;"
        f"code = main(['--db', {str(kb_path)!r}, 'techniques', 'list', '--json']);"
        "heavy = sorted(m for m in ('pandas', 'matplotlib', 'sqlmodel', 'sqlalchemy', 'llmeff.kb.schemas') if m in sys.modules);"
        "print(code, heavy, file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "0 []"


def _commands(group, prefix: str = ""):
    for name, command in group.commands.items():
        if hasattr(command, "commands"):  # a command group
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_command_has_help_with_an_example():
    from llmeff.cli.app import app

    root = typer.main.get_command(app)
    missing = [name for name, command in _commands(root) if "Example:" not in (command.help or "")]
    assert missing == []
    # The commands the knowledge-base issue names.
    assert {name for name, _ in _commands(root)} >= {
        "techniques tree", "techniques list", "techniques show", "techniques search",
        "hardware list", "hardware show", "models list", "models show", "db init", "db status", "db check",
    }


def test_modules_stay_small():
    too_long = [
        f"{path.relative_to(ROOT)}: {len(path.read_text().splitlines())} lines"
        for folder in PACKAGE_DIRS
        for path in (ROOT / folder).rglob("*.py")
        if len(path.read_text().splitlines()) > 500
    ]
    assert too_long == []


def test_ci_runs_exactly_the_readmes_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    # besides the two commands, .ci/run may only start the services the tests need, each from a
    # script of its own in .ci/ (PostgreSQL: .ci/postgres.sh)
    ci_commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                   if line and not line.startswith(("#", "set ", "cd ", "source .ci/"))]
    assert len(setup) == 2 and ci_commands == setup
    assert "llmeff plan" in setup[0]  # the main job
