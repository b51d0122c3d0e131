"""One row per check: the facts the session summary, JUnit properties and tolerance suggestions read.

Pure functions over a ``CheckResult``: how much of its tolerance a check used (the accuracy budget),
whether it came close to its tolerance, and the drift sentences of ``drift``. Rows are plain JSON so
xdist workers can hand them to the controller.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from pytest_trt.comparison.report import ComparisonReport, OutputReport  # loads no numpy
from pytest_trt.core.records import Record
from pytest_trt.goldens.policy import shown_action, strongest_action
from pytest_trt.reports.defaults import CLOSE_SHARE, DRIFT_FACTOR
from pytest_trt.reports.census import census_change
from pytest_trt.reports.drift import drift_sentences



class OutputRow(Record):
    """One output of one comparison, as numbers."""

    __slots__ = ("comparison", "output", "precision", "passed", "exact", "max_abs", "max_rel", "budget", "atol",
                 "rtol", "min_atol", "min_rtol", "tolerance_only", "magnitude", "dtype")

    def __init__(self, comparison: str, output: str, precision: str, passed: bool, exact: bool,
                 max_abs: float | None, max_rel: float | None, budget: float | None, atol: float | None,
                 rtol: float | None, min_atol: float | None, min_rtol: float | None, tolerance_only: bool,
                 magnitude: float | None = None, dtype: str | None = None):
        self.comparison = comparison    # "engine vs reference", "reference vs golden", "engine vs golden"
        self.output = output
        self.precision = precision      # the precision whose tolerances applied (goldens of the reference use fp32)
        self.passed = passed
        self.exact = exact
        self.max_abs = max_abs
        self.max_rel = max_rel
        self.budget = budget            # greatest |a-b| / allowed bound; > 1 fails; None where not numeric
        self.atol = atol
        self.rtol = rtol
        self.min_atol = min_atol
        self.min_rtol = min_rtol
        self.tolerance_only = tolerance_only  # failed only because values exceed the tolerance
        # With --trt-suggest-tolerances: the largest finite |expected| and the coarser float dtype of the two
        # sides, the scale of a suggestion's floor (None otherwise).
        self.magnitude = magnitude
        self.dtype = dtype


class CheckRecord(Record):
    """What one check did, for humans and dashboards."""

    __slots__ = ("test", "precision", "passed", "backend", "engine_skipped", "golden", "cache", "build_seconds",
                 "outputs", "drift", "close", "tolerated", "marker", "census", "precision_shortfall",
                 "first_diverging")

    def __init__(self, test: str, precision: str, passed: bool, backend: str, engine_skipped: str | None,
                 golden: str, cache: str | None, build_seconds: float, outputs: list[OutputRow],
                 drift: list[str] | None = None, close: bool = False, tolerated: bool = False,
                 marker: str | None = None, census: dict | None = None, precision_shortfall: str | None = None,
                 first_diverging: str | None = None):
        self.test = test                    # node id without the precision parameter
        self.precision = precision
        self.passed = passed
        self.backend = backend              # "tensorrt 8.6.1", or "none" when the engine side was skipped
        self.engine_skipped = engine_skipped
        self.golden = golden                # strongest golden action: unchanged, created, updated, missing, failed, -
        self.cache = cache                  # built / loaded / rebuilt / uncached (None: no engine built)
        self.build_seconds = build_seconds
        self.outputs = outputs
        self.drift = [] if drift is None else drift  # one sentence per drifted output
        self.close = close                  # passed but used more than CLOSE_SHARE of some tolerance
        self.tolerated = tolerated          # failed only on tolerances, and --trt-suggest-tolerances passed it
        self.marker = marker                # where the test's marker is declared (tests sharing it share this)
        self.census = census                # the engine's layer precisions (reports.census summary), where known
        self.precision_shortfall = precision_shortfall  # "fp16 requested, 0 of 41 ..." (reports.census.shortfall)
        self.first_diverging = first_diverging  # "node (op)" a localization named, where one ran and found one

    @property
    def worst(self) -> OutputRow | None:
        """The output row that used the largest share of its tolerance."""
        numeric = [r for r in self.outputs if r.budget is not None]
        return max(numeric, key=lambda r: r.budget) if numeric else None

    def to_json(self) -> dict:
        return self.as_dict()

    @classmethod
    def from_json(cls, data: Mapping) -> "CheckRecord":
        rows = [OutputRow(**r) for r in data.get("outputs", ())]
        return cls(**{**data, "outputs": rows})


def record_check(result, test: str, events: list[dict], drift_factor: float = DRIFT_FACTOR,
                 close_share: float = CLOSE_SHARE, suggest: bool = False, strict_drift: bool = False) -> CheckRecord:
    """The row of one finished check (a ``CheckResult``); ``events`` are the engine builds/loads it caused.

    With ``suggest`` (--trt-suggest-tolerances) a check that failed only on tolerances is "tolerated": pytest
    passes it, unless ``strict_drift`` fails it for drift, and the summary says "would fail", not "failed"."""
    rows = []
    sides = result.sides() if suggest else None  # the scale of a suggestion's floor: nothing on a check's own path
    for name, report, precision, _, expected_side in result.comparisons():
        added = output_rows(report, name, precision)
        if suggest:
            _add_scale(added, report, sides.get(expected_side) or {})
        rows += added
    backend = backend_label(result.backend)
    drift = drift_sentences(result.engine_baseline, result.engine_vs_reference, drift_factor)
    changed = census_change(result.census_before, result.census)
    if changed:
        drift.append(changed)
    tolerated = suggest and result.only_tolerance_failed and not (strict_drift and drift)
    return CheckRecord(test, result.precision, result.passed, backend, result.engine_skipped,
                       strongest_action(shown_action(a.action, tolerated) for a in result.golden_actions),
                       events[-1]["status"] if events else None, sum(e["seconds"] for e in events), rows,
                       drift, result.passed and close_to_tolerance(rows, close_share), tolerated,
                       census=result.census, precision_shortfall=result.precision_shortfall,
                       first_diverging=_first_diverging(result.localization))


def _first_diverging(loc) -> str | None:
    return f"{loc.first.node} ({loc.first.op})" if loc is not None and loc.first is not None else None


def output_rows(report: ComparisonReport | None, comparison: str, precision: str) -> list[OutputRow]:
    if report is None:
        return []
    return [_row(o, comparison, precision) for o in report.outputs]


def _row(o: OutputReport, comparison: str, precision: str) -> OutputRow:
    tol = o.tolerance
    budget = None
    if o.values_compared:
        budget = (0.0 if o.passed else math.inf) if o.exact else float(o.budget)
    return OutputRow(comparison, o.name, precision, o.passed, o.exact,
                     o.max_abs.value if o.max_abs else None, o.max_rel.value if o.max_rel else None, budget,
                     tol.atol if tol and not o.exact else None, tol.rtol if tol and not o.exact else None,
                     o.min_atol, o.min_rtol, o.tolerance_only)


def _add_scale(rows: list[OutputRow], report: ComparisonReport, expected: Mapping) -> None:
    """Each row's magnitude (largest finite |expected|) and coarser dtype, where its min_atol is known."""
    import numpy as np

    from pytest_trt.core.dtypes import coarser_float

    for row, o in zip(rows, report.outputs):
        if o.min_atol is None or o.exact or o.name not in expected:
            continue
        values = np.asarray(expected[o.name])
        if values.dtype.itemsize < 4:  # float16/bfloat16/float8: numpy's reductions want a native float
            values = values.astype(np.float32)
        finite = np.isfinite(values)   # the only full-size temporary (one byte per element)
        row.magnitude = float(max(np.max(values, initial=0.0, where=finite), -np.min(values, initial=0.0, where=finite)))
        row.dtype = coarser_float(o.actual_dtype, o.expected_dtype)


def close_to_tolerance(rows: list[OutputRow], share: float = CLOSE_SHARE) -> bool:
    return any(r.passed and r.budget is not None and r.budget > share for r in rows)


def backend_label(backend: dict | None) -> str:
    """"tensorrt 8.6.1", "onnxruntime 1.31.1 preview" (a CPU preview of a precision), or "none"."""
    if not backend:
        return "none"
    return f"{backend.get('backend')} {backend.get('version')}" + (" preview" if backend.get("preview") else "")
