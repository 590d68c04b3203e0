"""Reports: byte-identical rebuilds, figures without metadata, a self-contained page, safe folders,
and numbers checked against hand computations from the published config and datasheets."""

from __future__ import annotations

import base64
import csv
import io
import re
import struct
from pathlib import Path

import pytest

from llmeff.errors import InvalidInputError, UnknownIdError
from llmeff.report.build import build_report, check_report
from llmeff.report.request import Combination, ReportRequest, load_spec
from llmeff.workload.request import WorkloadRequest

WORKLOAD = WorkloadRequest(batch=8, prompt_tokens=1024, output_tokens=256)
REQUEST = ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb", "h100-sxm-80gb"),
                        (Combination.parse("awq"), Combination.parse("flash-attention + paged-kv"),
                         Combination.parse("fp8-quantization")), WORKLOAD)


@pytest.fixture(scope="module")
def built(kb_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "first"
    build_report(REQUEST, out, db=kb_path)
    return out


def _rows(folder: Path, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO((folder / f"{name}.csv").read_text())))


def _png_chunks(data: bytes) -> list[str]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append(kind.decode("ascii"))
        at += 12 + length
    return chunks


def test_the_same_request_builds_byte_identical_folders(built, kb_path, tmp_path):
    again = tmp_path / "second"
    build_report(REQUEST, again, db=kb_path)
    first = sorted(p.name for p in built.iterdir())
    assert first == sorted(p.name for p in again.iterdir())
    assert [n for n in first if (built / n).read_bytes() != (again / n).read_bytes()] == []


def test_the_folder_holds_documents_tables_figures_and_a_manifest(built):
    names = {p.name for p in built.iterdir()}
    assert {"report.md", "report.html", "manifest.json", "summary.csv", "memory.csv", "breakdown.csv",
            "operators.csv", "roofs.csv", "measurements.csv", "sources.csv", "comparison.png", "memory.png",
            "predicted-vs-measured.png"} <= names
    for hardware in REQUEST.hardware:  # one roofline and one breakdown per device
        assert {f"roofline-{hardware}.png", f"breakdown-{hardware}.png"} <= names


def test_memory_and_roofs_match_the_config_and_the_datasheet(built):
    memory = {(r["hardware"], r["combination"]): r for r in _rows(built, "memory")}
    base = memory[("a100-sxm4-80gb", "baseline")]
    # Llama-2-7B (config.json: 32 layers, hidden 4096, 32 KV heads, vocab 32000, intermediate 11008):
    # 6,738,415,616 parameters x 2 bytes in fp16
    assert float(base["weights_gb"]) == pytest.approx(6_738_415_616 * 2 / 1e9, rel=1e-4)
    # KV cache: 8 sequences x (1024 + 256) tokens x 32 layers x 2 (K and V) x 4096 x 2 bytes
    assert float(base["kv_cache_gb"]) == pytest.approx(8 * 1280 * 32 * 2 * 4096 * 2 / 1e9, rel=1e-4)
    assert float(base["capacity_gb"]) == 80.0  # A100 SXM4 80GB datasheet (decimal GB)
    # AWQ stores 4-bit weights: well under a third of the fp16 bytes, over a quarter (scales, fp16 embeddings)
    awq = float(memory[("a100-sxm4-80gb", "awq")]["weights_gb"])
    assert 0.25 < awq / float(base["weights_gb"]) < 0.34
    roofs = {(r["hardware"], r["dtype"]): r for r in _rows(built, "roofs")}
    a100 = roofs[("a100-sxm4-80gb", "fp16")]
    # A100 datasheet: 312 TFLOPS dense fp16 tensor, 2,039 GB/s -> ridge 153 FLOP/byte
    assert float(a100["peak_flop_per_s"]) == pytest.approx(312e12)
    assert float(a100["ridge_flop_per_byte"]) == pytest.approx(312e12 / 2.039e12, rel=1e-5)
    # H100 SXM: 989.5 TFLOPS dense fp16 and 1,979 dense fp8 (half the "with sparsity" figures), 3.35 TB/s
    assert float(roofs[("h100-sxm-80gb", "fp8")]["peak_flop_per_s"]) == pytest.approx(1979e12, rel=1e-3)


def test_summary_rows_agree_with_llmeff_analyze_and_mark_what_cannot_run(built, kb_path):
    from llmeff.analysis import AnalysisRequest, analyze

    summary = {(r["hardware"], r["combination"]): r for r in _rows(built, "summary")}
    assert list(summary)[0] == ("a100-sxm4-80gb", "baseline")  # request order, the baseline first
    direct = analyze(AnalysisRequest(hardware="h100-sxm-80gb", model="llama-2-7b", workload=WORKLOAD,
                                     techniques=("awq",), db=kb_path)).estimate
    row = summary[("h100-sxm-80gb", "awq")]
    assert float(row["tpot_ms"]) == pytest.approx(direct.tpot_s * 1e3, rel=1e-5)
    assert float(row["output_tokens_per_s"]) == pytest.approx(direct.output_tokens_per_s, rel=1e-5)
    # the A100 has no fp8 tensor cores (no published fp8 peak): a finding in the table, not a failed report
    fp8 = summary[("a100-sxm4-80gb", "fp8-quantization")]
    assert fp8["tpot_ms"] == "" and "no published fp8 peak" in fp8["note"]
    assert summary[("h100-sxm-80gb", "fp8-quantization")]["tpot_ms"] != ""


def test_breakdown_shares_add_up_to_the_phase(built):
    shares: dict[tuple, float] = {}
    for r in _rows(built, "breakdown"):
        key = (r["hardware"], r["combination"], r["phase"])
        shares[key] = shares.get(key, 0.0) + float(r["share_percent"])
    assert shares and all(s == pytest.approx(100.0, abs=1e-3) for s in shares.values())


def test_pngs_carry_no_metadata_and_show_a_real_picture(built):
    from PIL import Image

    for png in sorted(built.glob("*.png")):
        chunks = _png_chunks(png.read_bytes())
        assert not {"tEXt", "iTXt", "zTXt", "tIME"} & set(chunks), png.name
        with Image.open(png) as image:
            assert image.width >= 600 and image.height >= 300
            assert len(image.convert("RGB").getcolors(1 << 20)) > 50, f"{png.name} looks blank"


def test_the_page_embeds_its_figures_and_fetches_nothing(built):
    page = (built / "report.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == len(list(built.glob("*.png")))
    embedded = {base64.b64decode(s.split(",", 1)[1]) for s in sources}
    assert embedded == {p.read_bytes() for p in built.glob("*.png")}
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "<script" not in page and "@import" not in page
    links = set(re.findall(r'href="([^"]+)"', page))
    assert links and all((built / link).is_file() for link in links)  # CSV links stay inside the folder


def test_markdown_links_every_figure_and_table(built):
    text = (built / "report.md").read_text()
    for png in built.glob("*.png"):
        assert f"]({png.name})" in text
    for table in ("summary", "memory", "breakdown", "measurements", "sources", "operators"):
        assert f"({table}.csv)" in text


def test_predicted_vs_measured_lists_the_registry_rows_of_these_devices(built, kb_path):
    from llmeff.benchmarks.registry import MeasurementFilter, stored_measurements

    rows = _rows(built, "measurements")
    stored = {m.id for m in stored_measurements(kb_path, MeasurementFilter(model="llama-2-7b"))
              if m.hardware_id in REQUEST.hardware}
    assert rows and {r["measurement_id"] for r in rows} <= stored
    assert {r["hardware"] for r in rows} <= set(REQUEST.hardware)
    for r in rows:  # error is predicted / measured - 1, recomputed from the two columns
        assert float(r["error_percent"]) == pytest.approx(100 * (float(r["predicted"]) / float(r["measured"]) - 1),
                                                          abs=1e-3)


def test_check_says_identical_then_names_what_changed(built, kb_path, tmp_path):
    import shutil

    assert check_report(built, db=kb_path).identical
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    (copy / "summary.csv").write_text("edited\n")
    (copy / "memory.png").unlink()
    result = check_report(copy, db=kb_path)
    assert not result.identical
    assert result.differences == ("memory.png: missing from the folder", "summary.csv: differs")
    with pytest.raises(InvalidInputError, match="no manifest.json"):
        check_report(tmp_path, db=kb_path)


def test_a_non_empty_folder_needs_force_and_force_replaces_only_a_report(built, kb_path, tmp_path):
    import shutil

    small = ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb",), (), WORKLOAD)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="not empty; pass --force"):
        build_report(small, other, db=kb_path)
    with pytest.raises(InvalidInputError, match="not an llmeff report"):
        build_report(small, other, db=kb_path, force=True)
    assert (other / "keep.txt").read_text() == "mine"
    earlier = tmp_path / "earlier"
    shutil.copytree(built, earlier)
    build_report(small, earlier, db=kb_path, force=True)
    assert not (earlier / "roofline-h100-sxm-80gb.png").exists()  # files of the old report are gone
    assert check_report(earlier, db=kb_path).identical
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        build_report(small, tmp_path / "a-file", db=kb_path)


def test_a_failed_build_leaves_nothing_behind(kb_path, tmp_path, monkeypatch, built):
    import shutil

    from llmeff.report import plots

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plots, "memory", broken)
    small = ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb",), (), WORKLOAD)
    with pytest.raises(RuntimeError):
        build_report(small, tmp_path / "new", db=kb_path)
    assert list(tmp_path.iterdir()) == []
    earlier = tmp_path / "earlier"
    shutil.copytree(built, earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    with pytest.raises(RuntimeError):
        build_report(small, earlier, db=kb_path, force=True)
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before  # the earlier report is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["earlier"]


def test_a_failure_while_swapping_puts_the_earlier_report_back(kb_path, tmp_path, monkeypatch, built):
    import os
    import shutil

    from llmeff.report import build

    earlier = tmp_path / "earlier"
    shutil.copytree(built, earlier)
    before = {p.name: p.read_bytes() for p in earlier.iterdir()}
    real_rename = os.rename

    def rename(source, target):
        if Path(source).name.startswith(".earlier.building-"):
            raise OSError("rename failed")
        return real_rename(source, target)

    monkeypatch.setattr(build.os, "rename", rename)
    with pytest.raises(OSError):
        build_report(ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb",)), earlier, db=kb_path, force=True)
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["earlier"]


def test_unknown_ids_fail_before_anything_is_written(kb_path, tmp_path):
    with pytest.raises(UnknownIdError, match="Did you mean: h100"):
        build_report(ReportRequest(("llama-2-7b",), ("h100",)), tmp_path / "r", db=kb_path)
    with pytest.raises(UnknownIdError, match="unknown technique|unknown plugin"):
        build_report(ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb",), (Combination.parse("flash-atention"),)),
                     tmp_path / "r", db=kb_path)
    assert list(tmp_path.iterdir()) == []


def test_request_validation_names_the_field():
    with pytest.raises(InvalidInputError, match="field 'technique'"):
        Combination.parse("awq + ")
    with pytest.raises(InvalidInputError, match="'a100-sxm4-80gb' is given twice"):
        ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb", "a100-sxm4-80gb")).validated()
    with pytest.raises(InvalidInputError, match="field 'hardware'"):
        ReportRequest(("llama-2-7b",), ()).validated()
    with pytest.raises(InvalidInputError, match="field 'batch'"):
        ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb",), workload=WorkloadRequest(batch=0)).validated()


def test_a_spec_file_round_trips_and_its_errors_name_the_file(tmp_path):
    spec = tmp_path / "report.toml"
    spec.write_text('models = ["llama-2-7b"]\nhardware = ["a100-sxm4-80gb", "h100-sxm-80gb"]\n'
                    'combinations = ["awq", ["flash-attention", "paged-kv"]]\n'
                    '[workload]\nbatch = 8\nprompt_tokens = 1024\noutput_tokens = 256\n')
    request = load_spec(spec)
    assert request.combinations == (Combination(("awq",)), Combination(("flash-attention", "paged-kv")))
    assert request.workload == WORKLOAD
    assert ReportRequest.from_dict(request.to_dict()) == request
    spec.write_text('models = ["llama-2-7b"]\nhardware = ["a100-sxm4-80gb"]\ncolour = "red"\n')
    with pytest.raises(InvalidInputError, match=r"report.toml: unknown key 'colour'"):
        load_spec(spec)
    spec.write_text('models = ["llama-2-7b"\n')
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        load_spec(spec)
    spec.write_text('models = ["llama-2-7b"]\nhardware = ["a100-sxm4-80gb"]\n[workload]\nbatches = 2\n')
    with pytest.raises(InvalidInputError, match="field 'workload'"):
        load_spec(spec)
    with pytest.raises(InvalidInputError, match="no such file"):
        load_spec(tmp_path / "missing.toml")


def test_a_config_file_model_is_reported_and_its_content_is_an_input(kb_path, tmp_path):
    import json
    import shutil

    config = tmp_path / "gpt-j-6b.json"
    shutil.copy(Path(__file__).parents[1] / "data" / "configs" / "gpt-j-6b.json", config)
    out = tmp_path / "r"
    build_report(ReportRequest((), ("a100-sxm4-80gb",), (), WORKLOAD, configs=(str(config),)), out, db=kb_path)
    memory = _rows(out, "memory")
    # GPT-J-6B (config.json: n_embd 4096, n_layer 28, untied 50400-token head): 6.05e9 parameters x 2 bytes
    assert memory[0]["model"] == config.as_posix()
    assert float(memory[0]["weights_gb"]) == pytest.approx(6.05e9 * 2 / 1e9, rel=0.01)
    assert check_report(out, db=kb_path).identical
    data = json.loads(config.read_text())
    data["n_layer"] = 14
    config.write_text(json.dumps(data))
    result = check_report(out, db=kb_path)
    assert not result.identical and "memory.csv: differs" in result.differences
    assert any(line.startswith("config_files_sha256:") for line in result.changed_inputs)


def test_a_baseline_that_does_not_fit_is_said_so_not_compared(kb_path, tmp_path):
    out = tmp_path / "r"
    request = ReportRequest(("llama-2-70b",), ("rtx-4090-24gb",), (Combination.parse("weight-only-quant:bits=2"),),
                            WorkloadRequest(batch=1, prompt_tokens=512, output_tokens=128))
    build_report(request, out, db=kb_path)
    fits = {r["combination"]: r["fits"] for r in _rows(out, "summary")}
    # 68.98e9 parameters x 2 bytes = 138 GB against 24 GB; at 2 bits the weights take about 17 GB
    assert fits == {"baseline": "false", "weight-only-quant:bits=2": "true"}
    assert "the baseline does not fit in device memory" in (out / "report.md").read_text()


def test_a_report_reads_the_same_on_either_backend(shipped_db, built, tmp_path):
    # the same request over the same registry gives the same bytes, whichever database holds it
    out = tmp_path / "r"
    build_report(REQUEST, out, db=shipped_db)
    names = sorted(p.name for p in built.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names
    assert [n for n in names if (out / n).read_bytes() != (built / n).read_bytes()] == []
    assert check_report(out, db=shipped_db).identical


def test_a_calibration_imported_on_a_backend_is_an_input_of_the_manifest(fresh_db, tmp_path):
    import json

    from llmeff.benchmarks.api import calibrate

    small = ReportRequest(("llama-2-7b",), ("a100-sxm4-80gb",), (), WORKLOAD)
    out = tmp_path / "r"
    build_report(small, out, db=fresh_db)
    assert json.loads((out / "manifest.json").read_text())["inputs"]["calibration"] is None
    calibrate(fresh_db)
    result = check_report(out, db=fresh_db)
    assert not result.identical  # calibrated efficiency terms change the predictions
    assert any(line.startswith("calibration:") for line in result.changed_inputs)
