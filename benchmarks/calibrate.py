"""Fitting the cost model's efficiency terms to measurements: device-class, device and engine factors.

A case's compute and bandwidth fractions are ``sigmoid(logit(published default) + class + device +
engine)``: offsets from the published default of data/efficiency.toml, each pulled toward 0 by a
ridge penalty so that a group with few rows stays near what is known. Engines also carry a
per-kernel, per-step and per-request overhead (TTFT at short prompts is mostly these). The fit
minimises a robust loss of log(predicted / measured). A device gets its own offset only with at
least ``MIN_DEVICE_ROWS`` fitted rows, a class or an engine with ``MIN_GROUP_ROWS``; otherwise
predictions fall back to the class, then to the published default, and say which they used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from llmeff.benchmarks.predict import RowCase
from llmeff.benchmarks.terms import term_table
from llmeff.hardware.specs import Efficiency

MIN_DEVICE_ROWS = 10
MIN_GROUP_ROWS = 5
MODES = ("engine", "engine+device", "device", "global")
RIDGE = 1.0  # weight of an offset of 1 (in logit units) against a residual of 1 (in log units)
OVERHEAD_SCALE = {"kernel": 1e-5, "step": 1e-3, "request": 1e-2}  # seconds per parameter unit
OVERHEAD_RIDGE = 0.05
LOSS = "soft_l1"


def _logit(p: float) -> float:
    p = min(max(p, 0.05), 0.95)  # an ideal (1.0) default becomes a neutral prior near the top
    return math.log(p / (1 - p))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@dataclass(frozen=True)
class Fit:
    """A fitted calibration: offsets per group, overheads per engine, and what it was fitted on."""

    mode: str
    classes: dict[str, tuple[float, float]]  # class -> (compute offset, bandwidth offset), logit units
    devices: dict[str, tuple[float, float]]
    engines: dict[str, tuple[float, float]]
    overheads: dict[str, tuple[float, float, float]]  # engine -> (kernel, step, request) seconds
    rows: dict[str, int] = field(default_factory=dict)  # group ("class:x", "device:y", "engine:z") -> rows
    # per device class, the fitted engine with the most rows there: what a prediction naming none assumes
    default_engines: dict[str, str] = field(default_factory=dict)

    def default_engine(self, device_class: str) -> str | None:
        return self.default_engines.get(device_class) or self.default_engines.get("*")

    def efficiency_for(self, case_spec, device_class: str, engine: str) -> tuple[Efficiency, str]:
        """The efficiency a prediction on this device under this engine uses, and a sentence on which fit."""
        default = case_spec.efficiency
        zc, zb = _logit(default.compute_fraction), _logit(default.bandwidth_fraction)
        used = []
        if self.mode == "global":
            dc, db = self.classes.get("*", (0.0, 0.0))
            zc, zb = zc + dc, zb + db
            used.append("one global pair of factors")
        if case_spec.id in self.devices:
            dc, db = self.devices[case_spec.id]
            zc, zb = zc + dc, zb + db
            used.append(f"device fit '{case_spec.id}' ({self.rows.get('device:' + case_spec.id, 0)} rows)")
        if device_class in self.classes and self.mode != "device":
            dc, db = self.classes[device_class]
            zc, zb = zc + dc, zb + db
            if case_spec.id not in self.devices:
                used.append(f"class fit '{device_class}' ({self.rows.get('class:' + device_class, 0)} rows)")
        if not used:
            used.append(f"published default efficiency (no fitted rows for class '{device_class}')")
        kernel, step, request = default.kernel_overhead_s, 0.0, 0.0
        if engine in self.engines:
            ec, eb = self.engines[engine]
            zc, zb = zc + ec, zb + eb
            k, step, request = self.overheads[engine]
            kernel += k
            used.append(f"engine fit '{engine}' ({self.rows.get('engine:' + engine, 0)} rows)")
        elif self.engines:  # an engine the fit never saw: the median of the fitted engines, a typical one
            names = sorted(self.engines)
            ec = float(np.median([self.engines[n][0] for n in names]))
            eb = float(np.median([self.engines[n][1] for n in names]))
            zc, zb = zc + ec, zb + eb
            k, step, request = (float(np.median([self.overheads[n][i] for n in names])) for i in range(3))
            kernel += k
            used.append(f"no engine fit for '{engine}': the median of the {len(names)} fitted engines")
        else:
            used.append(f"no engine fit for '{engine}'")
        efficiency = Efficiency(compute_fraction=float(_sigmoid(zc)), bandwidth_fraction=float(_sigmoid(zb)),
                                kernel_overhead_s=kernel, step_overhead_s=step, request_overhead_s=request,
                                source="calibrated by llmeff bench calibrate: " + "; ".join(used))
        return efficiency, "; ".join(used)

    def to_json(self) -> dict:
        return {"mode": self.mode, "classes": self.classes, "devices": self.devices, "engines": self.engines,
                "overheads": self.overheads, "rows": self.rows, "default_engines": self.default_engines}

    @classmethod
    def from_json(cls, data: dict) -> "Fit":
        def pairs(d):
            return {k: tuple(v) for k, v in d.items()}

        return cls(data["mode"], pairs(data["classes"]), pairs(data["devices"]), pairs(data["engines"]),
                   pairs(data["overheads"]), dict(data["rows"]), dict(data.get("default_engines", {})))


def fit(cases: list[RowCase], *, mode: str = "engine", ridge: float = RIDGE) -> Fit:
    """Least-squares fit of the efficiency offsets and engine overheads to ``cases``' measurements."""
    from scipy.optimize import least_squares

    if mode not in MODES:
        raise ValueError(f"unknown calibration mode '{mode}'")
    cases = [c for c in cases if not (c.workload.prefill.overlap_resources or c.workload.decode.overlap_resources)]
    if not cases:
        raise ValueError("no measurements to fit")
    table = term_table(cases)
    layout = _Layout(cases, mode)
    base_c = np.array([_logit(c.spec.efficiency.compute_fraction) for c in cases])
    base_b = np.array([_logit(c.spec.efficiency.bandwidth_fraction) for c in cases])
    base_k = np.array([c.spec.efficiency.kernel_overhead_s for c in cases])
    log_measured = np.log(table.measured)

    def predict(x):
        zc, zb, k, s, r = layout.per_case(x)
        return table.predict(_sigmoid(base_c + zc), _sigmoid(base_b + zb), base_k + k, s, r)

    def residuals(x):
        fitted = np.log(predict(x)) - log_measured
        return np.concatenate([fitted, math.sqrt(ridge) * x[:layout.offsets],
                               math.sqrt(OVERHEAD_RIDGE) * x[layout.offsets:]])

    lower = np.r_[np.full(layout.offsets, -np.inf), np.zeros(layout.size - layout.offsets)]
    solution = least_squares(residuals, np.zeros(layout.size), bounds=(lower, np.full(layout.size, np.inf)),
                             loss=LOSS, f_scale=0.2, method="trf", x_scale=1.0, max_nfev=200)
    return layout.fit(solution.x)


class _Layout:
    """Where each group's parameters sit in the vector, and which groups each case belongs to."""

    def __init__(self, cases: list[RowCase], mode: str):
        self.mode = mode
        count = lambda key: {k: sum(1 for c in cases if key(c) == k) for k in {key(c) for c in cases}}  # noqa: E731
        class_rows, device_rows, engine_rows = (count(lambda c: c.device_class), count(lambda c: c.spec.id),
                                                count(lambda c: c.engine))
        use_classes = mode in ("engine", "engine+device")
        use_devices = mode in ("engine+device", "device")
        self.classes = sorted(k for k, n in class_rows.items() if use_classes and n >= MIN_GROUP_ROWS)
        self.devices = sorted(k for k, n in device_rows.items() if use_devices and n >= MIN_DEVICE_ROWS)
        self.engines = sorted(k for k, n in engine_rows.items() if mode != "global" and n >= MIN_GROUP_ROWS)
        if mode == "global":
            self.classes = ["*"]
        self.default_engines = _default_engines(cases, set(self.engines))
        self.rows = {**{f"class:{k}": class_rows.get(k, len(cases)) for k in self.classes},
                     **{f"device:{k}": device_rows[k] for k in self.devices},
                     **{f"engine:{k}": engine_rows[k] for k in self.engines}}
        groups = len(self.classes) + len(self.devices) + len(self.engines)
        self.offsets = 2 * groups
        self.size = self.offsets + 3 * len(self.engines)
        self._class_of = np.array([self._slot(self.classes, "*" if mode == "global" else c.device_class)
                                   for c in cases])
        self._device_of = np.array([self._slot(self.devices, c.spec.id) for c in cases])
        self._engine_of = np.array([self._slot(self.engines, c.engine) for c in cases])

    @staticmethod
    def _slot(names: list[str], name: str) -> int:
        return names.index(name) if name in names else -1

    def _split(self, x):
        n_c, n_d = len(self.classes), len(self.devices)
        offsets = x[:self.offsets].reshape(-1, 2)
        return offsets[:n_c], offsets[n_c:n_c + n_d], offsets[n_c + n_d:], x[self.offsets:].reshape(-1, 3)

    def per_case(self, x):
        classes, devices, engines, overheads = self._split(x)
        z = np.zeros((len(self._class_of), 2))
        for table, index in ((classes, self._class_of), (devices, self._device_of), (engines, self._engine_of)):
            if len(table):
                z += np.where(index[:, None] >= 0, table[np.maximum(index, 0)], 0.0)
        scale = np.array([OVERHEAD_SCALE["kernel"], OVERHEAD_SCALE["step"], OVERHEAD_SCALE["request"]])
        if len(overheads):
            o = np.where(self._engine_of[:, None] >= 0, overheads[np.maximum(self._engine_of, 0)] * scale, 0.0)
        else:
            o = np.zeros((len(self._class_of), 3))
        return z[:, 0], z[:, 1], o[:, 0], o[:, 1], o[:, 2]

    def fit(self, x) -> Fit:
        classes, devices, engines, overheads = self._split(x)
        scale = (OVERHEAD_SCALE["kernel"], OVERHEAD_SCALE["step"], OVERHEAD_SCALE["request"])

        def named(names, table):
            return {n: tuple(round(float(v), 6) for v in row) for n, row in zip(names, table)}

        return Fit(self.mode, named(self.classes, classes), named(self.devices, devices),
                   named(self.engines, engines),
                   {n: tuple(float(f"{v * s:.6g}") for v, s in zip(row, scale))
                    for n, row in zip(self.engines, overheads)},
                   self.rows, self.default_engines)


def _default_engines(cases: list[RowCase], fitted: set[str]) -> dict[str, str]:
    """Per class (and overall, '*'), the fitted engine with the most rows; ties go to the first by name."""
    counts: dict[str, dict[str, int]] = {}
    for case in cases:
        if case.engine in fitted:
            for key in (case.device_class, "*"):
                counts.setdefault(key, {}).setdefault(case.engine, 0)
                counts[key][case.engine] += 1
    return {key: min(engines, key=lambda e: (-engines[e], e)) for key, engines in sorted(counts.items())}
