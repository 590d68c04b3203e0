"""``llmeff report`` and ``llmeff plan --report``: exit codes, first lines of errors, the folder."""

from __future__ import annotations

import pytest

ARGS = ("report", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "-t", "awq", "--batch", "4")


def test_report_writes_the_folder_and_check_confirms_it(llmeff_cli, tmp_path):
    out = tmp_path / "r"
    code, stdout, err = llmeff_cli(*ARGS, "--out", str(out))
    assert (code, err) == (0, "")
    assert stdout.startswith(f"Wrote {out}: report.md, report.html, 7 CSV files, 5 figures, manifest.json")
    assert "highest throughput with awq" in stdout
    code, stdout, _ = llmeff_cli("report", "--check", str(out))
    assert code == 0 and stdout.startswith("Identical:")
    (out / "summary.csv").write_text("x\n")
    code, stdout, _ = llmeff_cli("report", "--check", str(out))
    assert code == 1 and "summary.csv: differs" in stdout


def test_a_spec_file_gives_the_same_report(llmeff_cli, tmp_path):
    spec = tmp_path / "report.toml"
    spec.write_text('models = ["llama-2-7b"]\nhardware = ["a100-sxm4-80gb"]\ncombinations = ["awq"]\n'
                    "[workload]\nbatch = 4\n")
    assert llmeff_cli(*ARGS, "--out", str(tmp_path / "a"))[0] == 0
    assert llmeff_cli("report", "--spec", str(spec), "--out", str(tmp_path / "b"))[0] == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)


@pytest.mark.parametrize("extra, first_line", [
    (("--hardware", "h100"), "Error: unknown hardware 'h100'. Did you mean: h100"),
    (("--batch", "0"), "Error: field 'batch': must be a positive whole number, got 0"),
])
def test_bad_input_is_one_line_and_writes_nothing(llmeff_cli, tmp_path, extra, first_line):
    args = ("report", "--model", "llama-2-7b") + (() if extra[0] == "--hardware" else ("--hardware", "a100"))
    code, _, err = llmeff_cli(*args, *extra, "--out", str(tmp_path / "r"))
    assert code == 1 and err.splitlines()[0].startswith(first_line)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_needs_force(llmeff_cli, tmp_path):
    out = tmp_path / "r"
    assert llmeff_cli(*ARGS, "--out", str(out))[0] == 0
    code, _, err = llmeff_cli(*ARGS, "--out", str(out))
    assert code == 1 and err.startswith(f"Error: field 'out': '{out}' is not empty; pass --force")
    assert llmeff_cli(*ARGS, "--out", str(out), "--force")[0] == 0


def test_usage_errors_exit_2(llmeff_cli, tmp_path):
    assert llmeff_cli("report", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb")[0] == 2  # no --out
    assert llmeff_cli("report", "--check", str(tmp_path), "--out", str(tmp_path / "x"))[0] == 2


def test_plan_writes_its_report(llmeff_cli, tmp_path):
    out = tmp_path / "plan"
    code, stdout, err = llmeff_cli("plan", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--batch", "8",
                                   "--max-tpot-ms", "10", "--report", str(out))
    assert (code, err) == (0, "")
    assert f"Wrote the plan's report to {out}" in stdout
    assert {"report.md", "report.html", "plans.csv", "pareto.csv", "pareto.png", "manifest.json"} <= {
        p.name for p in out.iterdir()}
    code, stdout, _ = llmeff_cli("report", "--check", str(out))
    assert code == 0 and stdout.startswith("Identical:")
    # a folder that cannot be written is refused before the search runs
    code, _, err = llmeff_cli("plan", "--model", "llama-2-7b", "--hardware", "a100-sxm4-80gb", "--report", str(out))
    assert code == 1 and "pass --force" in err


def test_a_config_file_stands_for_a_model(llmeff_cli, tmp_path):
    from pathlib import Path

    config = Path(__file__).parents[1] / "data" / "configs" / "falcon-7b.json"
    code, stdout, err = llmeff_cli("report", "--config", str(config), "--hardware", "a100-sxm4-80gb",
                                   "--out", str(tmp_path / "r"))
    assert (code, err) == (0, "")
    assert f"Models: {config.as_posix()}" in (tmp_path / "r" / "report.md").read_text()
    code, _, err = llmeff_cli("report", "--config", str(tmp_path / "none.json"), "--hardware", "a100-sxm4-80gb",
                              "--out", str(tmp_path / "s"))
    assert code == 1 and err.startswith("Error: field 'config': no such file")
