"""Comparison of output pairs: the public entry points, and each output's report.

``compare``/``assert_close`` (arrays or dicts of arrays) and ``compare_outputs`` (by name, as a check
compares) check shapes and dtypes first: those problems are reported as such, never as numeric failures.
Integers and bools compare exactly. Floats go through the fused scan (``scan``), float16/bfloat16/float8
in float32 (the kernel widens float16 and bfloat16 itself, block by block); this module turns the scan's
statistics into the report: the greatest differences and, for a failing output, what a passing one does
not need: the element that used the largest share of its bound, the first failing indices and the |a-b|
histogram by decade (``stats``). Records and messages are in ``report``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from pytest_trt.comparison import scan
from pytest_trt.comparison.report import ComparisonReport, Extreme, OutputReport
from pytest_trt.comparison.stats import decade_bins, output_statistics
from pytest_trt.core.dtypes import dtype_name
from pytest_trt.core.tolerance import Tolerance, resolve

__all__ = ["compare", "assert_close", "compare_outputs", "compare_arrays", "comparator_path", "ComparisonReport",
           "OutputReport", "Extreme"]


def compare(actual, expected, *, atol: float | None = None, rtol: float | None = None,
            precision: str = "fp32", convention: str | None = None, equal_nan: bool | None = None,
            tolerances: Mapping | None = None, detail: bool = False,
            actual_label: str = "actual", expected_label: str = "expected") -> ComparisonReport:
    """Compare arrays (or dicts of arrays, by name) and return a report; never raises on mismatch.

    Unset ``atol``/``rtol`` come from the default table for ``precision``; ``tolerances`` adds
    per-output or per-precision sections as in the marker. ``detail=True`` also computes the
    smallest passing tolerances and the error histogram for outputs that pass.
    """
    from pytest_trt.core.tolerance import check_tolerances, check_value

    test_level = {}
    for field, value in (("atol", atol), ("rtol", rtol), ("convention", convention), ("equal_nan", equal_nan)):
        if value is not None:
            test_level[field] = check_value(field, value, "compare()")
    tolerances = check_tolerances(tolerances)
    single = not isinstance(actual, Mapping) and not isinstance(expected, Mapping)
    if single:
        actual, expected = {"output": actual}, {"output": expected}
    elif not (isinstance(actual, Mapping) and isinstance(expected, Mapping)):
        raise TypeError("compare() takes two arrays or two dicts of arrays, not one of each")
    reports = compare_outputs(
        actual, expected, lambda name: resolve(precision, name, tolerances, test_level, "argument"), detail=detail)
    return ComparisonReport(reports, actual_label, expected_label)


def assert_close(actual, expected, **kwargs) -> ComparisonReport:
    """Like :func:`compare`, but raise ``AssertionError`` with the full report when anything differs."""
    __tracebackhide__ = True
    report = compare(actual, expected, **kwargs)
    if not report.passed:
        raise AssertionError(report.message)
    return report


def compare_outputs(actual: Mapping, expected: Mapping, tolerance_for, detail: bool = False) -> list[OutputReport]:
    """Compare by name: every expected output must be present in actual; extra actual outputs fail."""
    reports = []
    for name, exp in expected.items():
        if name not in actual:
            exp = np.asarray(exp)
            reports.append(OutputReport(name, False, "missing", None, exp.shape, None, exp.dtype.name, None))
            continue
        reports.append(compare_arrays(name, actual[name], exp, tolerance_for(name), detail=detail))
    for name, act in actual.items():
        if name not in expected:
            act = np.asarray(act)
            reports.append(OutputReport(name, False, "unexpected", act.shape, None, act.dtype.name, None, None))
    return reports


def compare_arrays(name: str, actual, expected, tolerance: Tolerance, detail: bool = False) -> OutputReport:
    """Compare one pair of arrays under ``tolerance``."""
    a, b = np.asarray(actual), np.asarray(expected)
    report = OutputReport(name, True, None, a.shape, b.shape, dtype_name(a.dtype), dtype_name(b.dtype), tolerance,
                          size=b.size)
    if a.shape != b.shape:
        report.passed, report.problem = False, "shape"
        return report
    kind_a, kind_b = _kind(a.dtype), _kind(b.dtype)
    if kind_a != kind_b or kind_a == "other":
        report.passed, report.problem = False, "dtype"
        return report
    if kind_a == "float":
        _compare_float(report, a, b, tolerance, detail)
    else:
        report.exact = True
        _compare_exact(report, a, b)
    return report


def comparator_path() -> str:
    """Which inner loop compares floats here: "C kernel" or "numpy" (the kernel was not built, or
    PYTEST_TRT_COMPARE=numpy), as this process's comparator decided it. The benchmark prints it; pytest's
header uses ``kernel.describe()``, which says the same without importing numpy."""
    return "C kernel" if scan._kernel is not None else "numpy"


def unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``np.unravel_index`` for one index, in plain Python (a tenth of its cost for one element)."""
    index = []
    for size in reversed(shape):
        flat, i = divmod(flat, size) if size else (flat, 0)
        index.append(i)
    return tuple(reversed(index))


# --------------------------------------------------------------------------------- float comparison

def _kind(dtype: np.dtype) -> str:
    if dtype == np.bool_:
        return "bool"
    if dtype.kind in "iu":
        return "int"
    if dtype.kind in "fc" or dtype.name in ("bfloat16",) or dtype.name.startswith("float8"):
        return "float" if dtype.kind != "c" else "other"
    return "other"


def _work_dtype(a: np.dtype, b: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if np.float64 in (a, b) else np.dtype(np.float32)


def _compare_float(report: OutputReport, a: np.ndarray, b: np.ndarray, tol: Tolerance, detail: bool) -> None:
    work = _work_dtype(a.dtype, b.dtype)
    fa, fb = a.reshape(-1), b.reshape(-1)
    if fb.size == 0:
        return
    total, runs = scan.floats(fa, fb, tol, work, detail)

    def extreme(stat):
        value, flat = stat
        if flat < 0:
            return None
        exp = float(fb[flat])
        return Extreme(float(value), unravel(flat, b.shape), float(fa[flat]), exp, _bound(abs(exp), tol))

    report.max_abs = extreme(total.max_abs)
    report.max_rel = extreme(total.max_rel)
    report.budget = max(total.budget[0], 0.0)
    report.mismatches = total.mismatches + total.nan_mismatches + total.inf_mismatches
    report.nan_mismatches, report.inf_mismatches = total.nan_mismatches, total.inf_mismatches
    if not tol.elementwise:
        report.mismatches = report.nan_mismatches + report.inf_mismatches
        total.first = scan.first_indices(total.nan_first, total.inf_first)
    failing = report.mismatches > 0
    if failing or detail:
        report.worst = _worst(total.budget, fa, fb, b.shape, tol, work)
        for e in (report.max_abs, report.max_rel):
            if e is not None:
                d = abs(e.actual - e.expected)
                e.share = d / e.allowed if e.allowed else (0.0 if d == 0 else math.inf)
        report.failing_indices = tuple(unravel(i, b.shape) for i in total.first)
        report.nan_indices = tuple(unravel(i, b.shape) for i in total.nan_first)
        report.inf_indices = tuple(unravel(i, b.shape) for i in total.inf_first)
        report.min_atol, report.min_rtol = total.min_atol, total.min_rtol
        report.histogram = decade_bins(scan.decade_counts(fa, fb, runs, work), work)
    output_statistics(report, fa, fb, work, tol)
    report.passed = report.mismatches == 0 and not report.statistic_failures
    if not report.passed:
        report.problem = "values" if report.mismatches else "statistics"


def _bound(abs_expected: float, tol: Tolerance) -> float:
    if tol.convention == "either":
        return max(tol.atol, tol.rtol * abs_expected)
    return tol.atol + tol.rtol * abs_expected


def _worst(budget: tuple[float, int], fa, fb, shape, tol: Tolerance, work: np.dtype) -> Extreme | None:
    """The element with the largest share of its bound: |a-b|, the bound and the share in the work dtype,
    as the verdict computed them (so a failing share is never shown as 100%), and as the kernel does."""
    if budget[1] < 0:
        return None
    flat = budget[1]
    act, exp = work.type(fa[flat]), work.type(fb[flat])
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        d, t = abs(act - exp), abs(exp) * work.type(tol.rtol)
        bound = max(t, work.type(tol.atol)) if tol.convention == "either" else t + work.type(tol.atol)
        share = d / bound if d else work.type(0)
    return Extreme(float(d), unravel(flat, shape), float(act), float(exp), float(bound), float(share))


# --------------------------------------------------------------------------------- exact comparison

def _compare_exact(report: OutputReport, a: np.ndarray, b: np.ndarray) -> None:
    fa, fb = a.reshape(-1), b.reshape(-1)
    mismatches, first, worst = scan.exact(fa, fb)
    report.mismatches = mismatches
    if mismatches:
        value, flat = worst
        report.max_abs = Extreme(value, unravel(flat, b.shape),
                                 float(fa[flat]), float(fb[flat]), 0.0)
        report.failing_indices = tuple(unravel(i, b.shape) for i in first)
        report.passed, report.problem = False, "values"
    else:
        report.max_abs = None
