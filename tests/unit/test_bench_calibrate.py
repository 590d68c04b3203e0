"""Calibration recovers efficiency factors it is given: synthetic measurements from known terms, fitted back.

The cases are the shipped registry's real configurations (models, devices, batch sizes, lengths and
techniques as published); only their measured values are replaced by what the cost model predicts
under a chosen "true" efficiency. A fit that works must then find that efficiency again.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
from dataclasses import replace

import pytest

from llmeff.benchmarks.calibrate import MODES, Fit, fit
from llmeff.benchmarks.compare import predict_cases
from llmeff.benchmarks.predict import RowCase, Unpredictable, predict_case, prepare
from llmeff.benchmarks.registry import MeasurementFilter, StoredMeasurement, stored_measurements
from llmeff.hardware.specs import Efficiency

DATACENTER, GDDR = "nvidia-datacenter-hbm", "nvidia-gddr"
TRT, LLAMA_CPP = "tensorrt-llm", "llama.cpp"
# The chosen truth: (compute fraction, bandwidth fraction) of one engine on one device class ...
TARGETS = {(TRT, DATACENTER): (0.60, 0.80), (LLAMA_CPP, GDDR): (0.35, 0.70)}
# ... and each engine's overheads: extra seconds per kernel (on top of the device's published
# kernel overhead), per forward pass (step) and per request.
OVERHEADS = {TRT: (1e-6, 2e-4, 4e-3), LLAMA_CPP: (3e-6, 5e-4, 1e-3)}
# Groups (engine, class) with enough rows to judge recovery on: 151, 140, 48 and 44 rows in the shipped
# registry. tensorrt-llm on nvidia-gddr (9 rows) is checked through the predictions only.
JUDGED_MIN_ROWS = 40


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture(scope="module")
def real_cases(kb_path) -> list[RowCase]:
    """The shipped registry's predictable rows under the two engines with many rows."""
    from llmeff.kb.api import open_kb

    with open_kb(kb_path) as kb:
        prepared = prepare(stored_measurements(kb_path, MeasurementFilter(origin="shipped")), kb)
    cases = [c for c in prepared if isinstance(c, RowCase) and c.engine in (TRT, LLAMA_CPP)]
    assert len(cases) > 300  # 151 + 9 tensorrt-llm, 232 llama.cpp rows at the time of writing
    return cases


@pytest.fixture(scope="module")
def engine_shifts(real_cases) -> dict[str, tuple[float, float]]:
    """Per engine, the logit shift from the published default that lands on TARGETS.

    The fit's model is logit(fraction) = logit(published default) + class offset + engine offset, so the
    truth is built in that form (class offsets 0): every class under one engine is shifted alike. This
    requires the devices of a target's class to share one published default, which is checked here.
    """
    shifts = {}
    for (engine, klass), (compute, bandwidth) in TARGETS.items():
        defaults = {(c.spec.efficiency.compute_fraction, c.spec.efficiency.bandwidth_fraction)
                    for c in real_cases if c.device_class == klass}
        assert len(defaults) == 1, f"devices of {klass} have different published defaults: {defaults}"
        (dc, db), = defaults
        shifts[engine] = (_logit(compute) - _logit(dc), _logit(bandwidth) - _logit(db))
    return shifts


def true_efficiency(spec, engine: str, shifts) -> Efficiency:
    default = spec.efficiency
    sc, sb = shifts[engine]
    kernel, step, request = OVERHEADS[engine]
    return Efficiency(compute_fraction=_sigmoid(_logit(default.compute_fraction) + sc),
                      bandwidth_fraction=_sigmoid(_logit(default.bandwidth_fraction) + sb),
                      kernel_overhead_s=default.kernel_overhead_s + kernel, step_overhead_s=step,
                      request_overhead_s=request, source="synthetic truth")


def with_value(case: RowCase, value: float) -> RowCase:
    m = case.measurement
    return replace(case, measurement=replace(m, row=replace(m.row, value=value)))


@pytest.fixture(scope="module")
def synthetic(real_cases, engine_shifts) -> list[RowCase]:
    return [with_value(c, predict_case(c, true_efficiency(c.spec, c.engine, engine_shifts))) for c in real_cases]


@pytest.fixture(scope="module")
def fitted(synthetic) -> Fit:
    return fit(synthetic, mode="engine")


@pytest.fixture(scope="module")
def fitted_without_prior(synthetic) -> Fit:
    # a vanishing ridge: what the data alone determine
    return fit(synthetic, mode="engine", ridge=1e-6)


def judged_groups(cases) -> dict[tuple[str, str], RowCase]:
    """(engine, class) -> one case of it, for groups with at least JUDGED_MIN_ROWS rows."""
    groups: dict[tuple[str, str], list[RowCase]] = {}
    for c in cases:
        groups.setdefault((c.engine, c.device_class), []).append(c)
    return {key: rows[0] for key, rows in groups.items() if len(rows) >= JUDGED_MIN_ROWS}


def test_the_synthetic_truth_hits_the_targets(real_cases, engine_shifts):
    # the construction itself: on the target class the truth is exactly the chosen pair
    for (engine, klass), (compute, bandwidth) in TARGETS.items():
        case = next(c for c in real_cases if c.engine == engine and c.device_class == klass)
        truth = true_efficiency(case.spec, engine, engine_shifts)
        assert truth.compute_fraction == pytest.approx(compute, rel=1e-12)
        assert truth.bandwidth_fraction == pytest.approx(bandwidth, rel=1e-12)


def test_fit_recovers_compute_and_bandwidth_fractions(synthetic, fitted, engine_shifts):
    groups = judged_groups(synthetic)
    assert set(TARGETS) <= set(groups)
    assert len(groups) == 4  # also llama.cpp on the datacenter class and on Apple GPUs
    for (engine, klass), case in groups.items():
        got, which = fitted.efficiency_for(case.spec, klass, engine)
        truth = true_efficiency(case.spec, engine, engine_shifts)
        assert f"engine fit '{engine}'" in which and f"class fit '{klass}'" in which
        # 4%: the ridge prior (weight 1 per logit unit of offset) pulls every offset toward the published
        # default. With ~150 rows whose log-metric moves by only (1 - fraction) per logit unit, that
        # pull is worth up to ~3.3% (tensorrt-llm's bandwidth fraction: 0.826 for a true 0.80, which its
        # compute-bound throughput/TTFT rows constrain weakly); the other groups land within 2.5%.
        # test_without_the_prior_recovery_is_within_one_percent shows the rest is the prior, not the fit.
        assert got.compute_fraction == pytest.approx(truth.compute_fraction, rel=0.04), (engine, klass)
        assert got.bandwidth_fraction == pytest.approx(truth.bandwidth_fraction, rel=0.04), (engine, klass)


def test_the_prior_pulls_toward_the_published_default(synthetic, fitted, engine_shifts):
    # on the two target groups each fitted fraction lies between the truth and the published default
    for (engine, klass), (compute, bandwidth) in TARGETS.items():
        case = next(c for c in synthetic if c.engine == engine and c.device_class == klass)
        got, _ = fitted.efficiency_for(case.spec, klass, engine)
        default = case.spec.efficiency
        for value, truth, prior in ((got.compute_fraction, compute, default.compute_fraction),
                                    (got.bandwidth_fraction, bandwidth, default.bandwidth_fraction)):
            low, high = sorted((truth, prior))
            assert low - 1e-3 <= value <= high, (engine, klass, value, truth, prior)


def test_without_the_prior_recovery_is_within_one_percent(synthetic, fitted_without_prior, engine_shifts):
    # what remains is the fit's own approximation (decode taken at its mean context in the term table)
    for (engine, klass), case in judged_groups(synthetic).items():
        got, _ = fitted_without_prior.efficiency_for(case.spec, klass, engine)
        truth = true_efficiency(case.spec, engine, engine_shifts)
        assert got.compute_fraction == pytest.approx(truth.compute_fraction, rel=0.01), (engine, klass)
        assert got.bandwidth_fraction == pytest.approx(truth.bandwidth_fraction, rel=0.01), (engine, klass)


def test_predictions_with_the_fitted_terms_reproduce_the_synthetic_values(synthetic, fitted):
    predictions = predict_cases(synthetic, fitted, None)
    assert len(predictions) == len(synthetic)
    errors = [abs(p.predicted / c.measurement.row.value - 1) for p, c in zip(predictions, synthetic)]
    assert statistics.median(errors) < 0.02
    assert max(errors) < 0.10  # no row far off (observed at most ~4%: the tensorrt-llm rows on nvidia-gddr)


def test_request_overhead_is_recovered_where_rows_depend_on_it(synthetic, fitted):
    # tensorrt-llm's 24 batch-1 TTFT rows carry its per-request overhead; 10%: the same ridge pull as
    # above (observed 3.7 ms for a true 4 ms)
    assert fitted.overheads[TRT][2] == pytest.approx(OVERHEADS[TRT][2], rel=0.10)
    # no llama.cpp row (llama-bench pp/tg tokens/s) includes a request's fixed cost: its request overhead
    # is not identified and stays at its prior, 0
    assert {c.metric for c in synthetic if c.engine == LLAMA_CPP} == {"decode_tokens_per_s", "prefill_tokens_per_s"}
    assert fitted.overheads[LLAMA_CPP][2] < 1e-6


def test_fit_counts_the_rows_of_each_group(synthetic, fitted):
    for engine in (TRT, LLAMA_CPP):
        assert fitted.rows[f"engine:{engine}"] == sum(1 for c in synthetic if c.engine == engine)
    assert sum(n for key, n in fitted.rows.items() if key.startswith("class:")) == len(synthetic)
    assert fitted.default_engine(GDDR) == LLAMA_CPP  # 140 llama.cpp rows against 9 tensorrt-llm ones
    assert fitted.default_engine(DATACENTER) == TRT  # 151 against 48


def test_fit_json_round_trip(fitted):
    text = json.dumps(fitted.to_json())  # what fits.save_fit stores
    again = Fit.from_json(json.loads(text))
    assert again == fitted
    assert all(isinstance(v, tuple) for table in (again.classes, again.engines, again.overheads)
               for v in table.values())  # JSON lists come back as the tuples the fit holds


def test_round_tripped_fit_predicts_the_same(synthetic, fitted):
    again = Fit.from_json(json.loads(json.dumps(fitted.to_json())))
    for case in synthetic[:: max(1, len(synthetic) // 20)]:
        assert again.efficiency_for(case.spec, case.device_class, case.engine) == \
            fitted.efficiency_for(case.spec, case.device_class, case.engine)


def test_unknown_mode_raises(synthetic):
    with pytest.raises(ValueError, match="nonsense"):
        fit(synthetic[:10], mode="nonsense")
    assert "nonsense" not in MODES


def test_api_calibrate_refuses_an_unknown_mode_naming_the_field(kb_path):
    from llmeff.benchmarks.api import calibrate
    from llmeff.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="mode"):
        calibrate(kb_path, mode="nonsense")  # refused before anything is fitted or stored


def test_fit_with_no_cases_raises():
    with pytest.raises(ValueError, match="no measurements"):
        fit([], mode="engine")


def _concurrent(m: StoredMeasurement) -> bool:
    notes = (m.row.notes or "").lower()
    return m.row.metric == "requests_per_s" or "qps" in notes or "concurren" in notes or "clients" in notes


def test_a_row_measured_at_a_request_rate_is_flagged(real_cases, kb_path):
    from llmeff.kb.api import open_kb

    decode = next(c for c in real_cases if c.metric == "decode_tokens_per_s")
    row = decode.measurement.row
    variants = [replace(row, notes=(row.notes or "") + "; measured at QPS=4"),
                replace(row, metric="requests_per_s", unit="requests/s")]
    stored = [replace(decode.measurement, id=v.identity, row=v) for v in variants]
    with open_kb(kb_path) as kb:
        prepared = prepare([decode.measurement] + stored, kb)
    assert isinstance(prepared[0], RowCase)  # the row itself is predictable ...
    for flagged in prepared[1:]:  # ... and the same row under load is not
        assert isinstance(flagged, Unpredictable) and flagged.concurrency
        assert "concurrent" in flagged.reason


def test_concurrency_rows_never_reach_the_fit(kb_path, tmp_path):
    from llmeff.benchmarks.api import calibrate
    from llmeff.kb.api import open_kb

    db = tmp_path / "llmeff.db"
    shutil.copy(kb_path, db)  # calibrate stores its fit: not in the shared database
    measurements = stored_measurements(db)
    with open_kb(db) as kb:
        prepared = prepare(measurements, kb)
    under_load = [m for m in measurements if _concurrent(m)]
    assert len(under_load) >= 4  # DeepSpeed-FastGen's client sweeps and vLLM's QPS=1 rows
    by_id = {p.measurement.id: p for p in prepared}
    for m in under_load:  # flagged even when a name does not resolve (vLLM's bare "H100")
        assert isinstance(by_id[m.id], Unpredictable) and by_id[m.id].concurrency, m.row.notes
    assert any(m.hardware_id is None for m in under_load)
    flagged = {p.measurement.id for p in prepared if isinstance(p, Unpredictable) and p.concurrency}
    assert flagged
    report = calibrate(db, mode="engine")
    fitted_ids = {c.measurement.id for c in report.cases}
    assert not fitted_ids & {m.id for m in under_load}
    assert not fitted_ids & flagged
    assert report.fitted_rows == len(fitted_ids) == sum(1 for p in prepared if isinstance(p, RowCase))
