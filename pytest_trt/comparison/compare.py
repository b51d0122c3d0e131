"""Comparison of output pairs: one chunked, fused pass per output, and reports that explain failures.

Each output is scanned in fixed-size chunks with reused buffers (no full-size temporaries); chunks
produce partial statistics that merge, so large outputs are split across threads. Each chunk goes
through the C kernel (``_scan.c``: one read of both arrays, GIL released) when it was built at
install, else through nine numpy operations; both give the same reports. ``PYTEST_TRT_COMPARE=numpy``
forces the numpy path. Shape and dtype problems are reported as such, never as numeric failures.
Integers and bools compare exactly; float16/bfloat16/float8 compare in float32 (the kernel widens
float16 and bfloat16 itself, block by block).

A failing output also gets what a passing one does not need: the element that used the largest share
of its bound, the first failing indices, and the exact |a-b| histogram by decade. The kernel computes
them in the same pass from the first failing element on; chunks that passed before it are counted
afterwards (a second read only of what came before the first failure).
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping

import numpy as np

from pytest_trt.comparison import kernel as comparator_kernel
from pytest_trt.core.dtypes import dtype_name
from pytest_trt.core.records import Record
from pytest_trt.core.tolerance import CONVENTIONS, Tolerance, resolve

_kernel = comparator_kernel.load()      # the C kernel module, or None: the numpy path (see comparator_kernel)

CHUNK = 1 << 18                 # float32 elements per chunk at most: 1 MiB buffers (fewer for wider dtypes);
                                # large, so that threads seldom wait for each other's GIL hand-over
CHUNK_MEMORY = 14 << 20         # all threads' chunk buffers together (7 per thread) stay under this
PARALLEL_MIN = 1 << 21          # outputs at least this large are split across threads
MAX_THREADS = 4                 # 2 threads get 1 MiB buffers, 4 threads 512 KiB: peak extra memory < 16 MiB
FIRST = 5                       # failing indices a report lists (the first ones, in index order)
MARGIN = 1e-5                   # chunks this close to the bound are decided by the exact formula


class Extreme(Record):
    """Where a statistic peaks: its value, the element's index, both values, the bound there and the
    share of it that |a-b| used (> 1 fails). For ``OutputReport.worst``, whose statistic is that share,
    ``value`` is |a-b|."""

    __slots__ = ("value", "index", "actual", "expected", "allowed", "share")

    def __init__(self, value: float, index: tuple[int, ...], actual: float, expected: float,
                 allowed: float | None = None, share: float | None = None):
        self.value = value
        self.index = index
        self.actual = actual
        self.expected = expected
        self.allowed = allowed
        self.share = share


class OutputReport(Record):
    """The comparison of one output: verdict, kind of problem, and the statistics behind it."""

    __slots__ = ("name", "passed", "problem", "actual_shape", "expected_shape", "actual_dtype", "expected_dtype",
                 "tolerance", "size", "mismatches", "nan_mismatches", "inf_mismatches", "worst", "max_abs", "max_rel",
                 "failing_indices", "nan_indices", "inf_indices", "budget", "min_atol", "min_rtol", "histogram",
                 "statistics", "statistic_failures", "exact")

    def __init__(self, name: str, passed: bool, problem: str | None, actual_shape: tuple | None,
                 expected_shape: tuple | None, actual_dtype: str | None, expected_dtype: str | None,
                 tolerance: Tolerance | None, size: int = 0, mismatches: int = 0, nan_mismatches: int = 0,
                 inf_mismatches: int = 0, worst: Extreme | None = None, max_abs: Extreme | None = None,
                 max_rel: Extreme | None = None, failing_indices: tuple[tuple[int, ...], ...] = (),
                 nan_indices: tuple[tuple[int, ...], ...] = (), inf_indices: tuple[tuple[int, ...], ...] = (),
                 budget: float = 0.0, min_atol: float | None = None, min_rtol: float | None = None,
                 histogram: list[tuple[str, int]] | None = None,
                 statistics: dict[str, float] | None = None, statistic_failures: list[str] | None = None,
                 exact: bool = False):
        self.name = name
        self.passed = passed
        self.problem = problem              # None, "missing", "unexpected", "shape", "dtype", "values", "statistics"
        self.actual_shape = actual_shape
        self.expected_shape = expected_shape
        self.actual_dtype = actual_dtype
        self.expected_dtype = expected_dtype
        self.tolerance = tolerance
        self.size = size
        self.mismatches = mismatches
        self.nan_mismatches = nan_mismatches
        self.inf_mismatches = inf_mismatches
        self.worst = worst                  # the element with the largest share of its bound (failing outputs)
        self.max_abs = max_abs
        self.max_rel = max_rel
        self.failing_indices = failing_indices  # the first FIRST failing elements, of any kind, in index order
        self.nan_indices = nan_indices          # the first FIRST NaN mismatches
        self.inf_indices = inf_indices          # the first FIRST Inf mismatches
        self.budget = budget                # greatest |a-b| / allowed bound over finite elements (> 1 fails)
        self.min_atol = min_atol            # smallest atol that passes at the given rtol
        self.min_rtol = min_rtol            # smallest rtol that passes at the given atol
        self.histogram = histogram          # [(decade, count)] of |a-b| over every finite element ("0": equal)
        self.statistics = {} if statistics is None else statistics
        self.statistic_failures = [] if statistic_failures is None else statistic_failures
        self.exact = exact                  # integers and bools: compared for equality

    def message(self) -> str:
        return format_output(self)

    @property
    def values_compared(self) -> bool:
        """Shapes and dtypes matched, so the values were compared (and the statistics mean something)."""
        return self.problem in (None, "values", "statistics")

    @property
    def tolerance_only(self) -> bool:
        """Failed only because float values exceed their tolerance: a looser tolerance would pass."""
        return (not self.passed and not self.exact and self.problem in ("values", "statistics")
                and not self.nan_mismatches and not self.inf_mismatches
                and not (self.min_atol is not None and math.isinf(self.min_atol)))


class ComparisonReport(Record):
    """All outputs of one comparison (``actual`` against ``expected``)."""

    __slots__ = ("outputs", "actual_label", "expected_label")

    def __init__(self, outputs: list[OutputReport], actual_label: str = "actual", expected_label: str = "expected"):
        self.outputs = outputs
        self.actual_label = actual_label
        self.expected_label = expected_label

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def failed(self) -> list[OutputReport]:
        return [o for o in self.outputs if not o.passed]

    def __getitem__(self, name: str) -> OutputReport:
        for output in self.outputs:
            if output.name == name:
                return output
        raise KeyError(name)

    @property
    def message(self) -> str:
        return format_report(self)


# ----------------------------------------------------------------------------------------- public API

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
    PYTEST_TRT_COMPARE=numpy). Shown in pytest's header and by the benchmark."""
    return "C kernel" if _kernel is not None else "numpy"


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


class _Partial(Record):
    """Statistics of one run of chunks; ``merge`` combines runs. Peaks are (value, flat index).
    ``counts`` is the decade histogram (see ``_decades``) of elements ``hist_from`` onward, or None
    before the first failure (and never, for a run that asked for none)."""

    __slots__ = ("max_abs", "max_rel", "budget", "mismatches", "nan_mismatches", "inf_mismatches", "min_atol",
                 "min_rtol", "first", "nan_first", "inf_first", "counts", "hist_from")

    def __init__(self, max_abs: tuple[float, int] = (-1.0, -1), max_rel: tuple[float, int] = (-1.0, -1),
                 budget: tuple[float, int] = (-1.0, -1), mismatches: int = 0, nan_mismatches: int = 0,
                 inf_mismatches: int = 0, min_atol: float = 0.0, min_rtol: float = 0.0):
        self.max_abs = max_abs
        self.max_rel = max_rel
        self.budget = budget
        self.mismatches = mismatches
        self.nan_mismatches = nan_mismatches
        self.inf_mismatches = inf_mismatches
        self.min_atol = min_atol
        self.min_rtol = min_rtol
        self.first: list[int] | tuple = ()   # flat indices of the first FIRST failing elements, any kind
        self.nan_first: list[int] | tuple = ()
        self.inf_first: list[int] | tuple = ()
        self.counts: np.ndarray | None = None
        self.hist_from = 0

    @property
    def failures(self) -> int:
        return self.mismatches + self.nan_mismatches + self.inf_mismatches

    def merge(self, other: "_Partial") -> None:
        """Fold in the statistics of a later run (histograms are merged by the caller)."""
        self.max_abs = max(self.max_abs, other.max_abs, key=lambda t: t[0])
        self.max_rel = max(self.max_rel, other.max_rel, key=lambda t: t[0])
        self.budget = max(self.budget, other.budget, key=lambda t: t[0])
        self.mismatches += other.mismatches
        self.nan_mismatches += other.nan_mismatches
        self.inf_mismatches += other.inf_mismatches
        self.min_atol = max(self.min_atol, other.min_atol)
        self.min_rtol = max(self.min_rtol, other.min_rtol)
        self.first = _first(self.first, other.first)
        self.nan_first = _first(self.nan_first, other.nan_first)
        self.inf_first = _first(self.inf_first, other.inf_first)

    def count(self, counts: np.ndarray, offset: int) -> None:
        """Add the histogram of the chunk at ``offset``; the first one starts the run's histogram."""
        if self.counts is None:
            self.counts, self.hist_from = counts.astype(np.int64), offset
        else:
            self.counts += counts


def _first(a: list[int], b) -> list[int]:
    """The first FIRST of two sorted runs of distinct indices."""
    if len(a) >= FIRST and (not len(b) or b[0] > a[-1]):
        return a
    return sorted([*a, *(int(i) for i in b)])[:FIRST]


def _compare_float(report: OutputReport, a: np.ndarray, b: np.ndarray, tol: Tolerance, detail: bool) -> None:
    work = _work_dtype(a.dtype, b.dtype)
    fa, fb = a.reshape(-1), b.reshape(-1)
    n = fb.size
    if n == 0:
        return
    if work.char not in _KERNEL_DECADES:
        _decades(work)                            # the histogram tables (the kernel's too), before any thread
    if n >= PARALLEL_MIN and _threads() > 1:
        ranges = _split(n, _threads())
        results = list(_executor().map(lambda r: _scan(fa, fb, r[0], r[1], tol, work, detail), ranges))
    else:
        ranges, results = [(0, n)], [_scan(fa, fb, 0, n, tol, work, detail)]
    total = results[0]
    for part in results[1:]:
        total.merge(part)

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
        total.first = _first(total.nan_first, total.inf_first)
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
        counts = np.zeros(_decades(work).bins, np.int64)
        for (start, stop), part in zip(ranges, results):
            if part.counts is None:
                part.count(_histogram(fa, fb, start, stop, work), start)
            elif part.hist_from > start:          # chunks that passed before the run's first failure
                part.counts += _histogram(fa, fb, start, part.hist_from, work)
            counts += part.counts
        report.histogram = _decade_bins(counts, work)
    _statistics(report, fa, fb, work, tol)
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


def _scan(fa: np.ndarray, fb: np.ndarray, start: int, stop: int, tol: Tolerance, work: np.dtype,
          detail: bool, counting: bool = True) -> _Partial:
    """One fused pass over elements [start, stop) in chunks; see module docstring.

    Per chunk the common (passing) case costs nine array operations: |a-b|, its maximum, |e|, the
    relative difference and its maximum, and the share of the bound used, computed as
    ``(d / rtol) / (|e| + atol/rtol)`` (``max(|e|, atol/rtol)`` for "either"), one operation fewer
    than ``d / (atol + rtol*|e|)``. That rescaled share only clears chunks far from the bound and from
    the largest share so far; any other chunk is decided again with the exact formula, so verdicts,
    mismatch counts and the largest share (its value and element) agree with ``np.isclose`` and the
    kernel bit for bit. Tolerances whose bound may be subnormal (atol = 0) take the exact path.
    ``counting``: histograms from the first failure on (see ``_Partial``).
    """
    if _kernel is not None:
        return _scan_kernel(_kernel, fa, fb, start, stop, tol, work, detail, counting)
    part = _Partial()
    chunk = _chunk_size(work)
    size = min(chunk, stop - start)
    a_buf = np.empty(size, work) if fa.dtype != work else None
    b_buf = np.empty(size, work) if fb.dtype != work else None
    d_buf, m_buf, w_buf, t_buf = (np.empty(size, work) for _ in range(4))
    f_buf = np.empty(size, np.bool_)
    atol, rtol, either = work.type(tol.atol), work.type(tol.rtol), tol.convention == "either"
    lo, hi = float(rtol) * (1 - MARGIN), float(rtol) * (1 + MARGIN)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shift = work.type(atol / rtol) if rtol > 0 else None
        # The rescaled share equals the exact one only while every bound atol + rtol*|e| is a normal number:
        # with atol below the smallest normal, rtol*|e| can be subnormal and lose digits (budget 0.95 for 1.0).
        fast = shift is not None and math.isfinite(shift) and rtol >= _tiny(work) and atol >= _tiny(work)
        for s in range(start, stop, chunk):
            e = min(s + chunk, stop)
            k = e - s
            A, B = fa[s:e], fb[s:e]
            if a_buf is not None:
                A = a_buf[:k]
                np.copyto(A, fa[s:e], casting="unsafe")
            if b_buf is not None:
                B = b_buf[:k]
                np.copyto(B, fb[s:e], casting="unsafe")
            d, m, w, t = d_buf[:k], m_buf[:k], w_buf[:k], t_buf[:k]
            np.subtract(A, B, out=d)
            np.abs(d, out=d)
            i = int(d.argmax())
            if not math.isfinite(d[i]):
                _scan_nonfinite(part, A, B, s, tol, detail, counting, work)
                continue
            if d[i] > part.max_abs[0]:
                part.max_abs = (float(d[i]), s + i)
            if counting and (detail or part.counts is not None):
                part.count(_bin_counts(d, work), s)
            np.abs(B, out=m)                      # m = |expected|
            np.divide(d, m, out=w)                # w = relative difference (NaN where both are 0)
            _track_max(part, "max_rel", w, s, 1.0)
            all_fail, best = False, True
            if fast:
                (np.maximum if either else np.add)(m, shift, out=t)
                np.divide(d, t, out=t)            # t = share of the bound used, times rtol
                scaled = float(np.fmax.reduce(t))
                scaled = scaled if scaled == scaled else 0.0
                # the largest share is taken from the exact formula, as the kernel does (the same element
                # on ties): only chunks whose estimate comes near the largest so far need it
                best = scaled / float(rtol) >= part.budget[0] * (1 - MARGIN)
                if scaled <= lo and not detail and not best:
                    continue                      # every element is well within its bound
                all_fail = bool(np.minimum.reduce(t) > hi)   # a NaN (0/0) propagates: then not all fail
            np.multiply(m, rtol, out=t)           # t = rtol * |expected|
            (np.maximum if either else np.add)(t, atol, out=w)   # w = the bound, as np.isclose computes it
            fails = k if all_fail else int(np.count_nonzero(np.greater(d, w, out=f_buf[:k])))
            if best:
                np.divide(d, w, out=w)            # share of the bound used (inf where the bound is 0)
                _track_max(part, "budget", w, s, 1.0)
            part.mismatches += fails
            if fails and len(part.first) < FIRST:
                part.first = _first(part.first, s + (np.arange(min(k, FIRST)) if all_fail
                                                     else np.flatnonzero(f_buf[:k])[:FIRST]))
            if fails and counting and part.counts is None:
                part.count(_bin_counts(d, work), s)
            if tol.elementwise and (fails or detail):
                _needed(part, d, m, t, w, atol, either)
    return part


_KINDS = {"f": "f", "e": "e", "E": "b", "d": "d"}   # dtype.char: the kernel's name ("b": bfloat16, as uint16)


def _kernel_kind(x: np.ndarray, work: np.dtype) -> str | None:
    """The kernel's name for the dtype of ``x`` where it reads ``x`` in place, else None: chunks are then
    converted to the work dtype first (float8, other byte orders, strides, float32 beside float64).
    From ``dtype.char``: hashing a dtype, or asking its name, costs more than this whole test."""
    dtype = x.dtype
    kind = _KINDS.get(dtype.char)
    if (kind is None or (kind == "d") != (work.char == "d") or x.strides[0] != dtype.itemsize or not dtype.isnative
            or (kind == "b" and dtype.name != "bfloat16")):
        return None
    return kind


def _kernel_chunks(fa, fb, start: int, stop: int, work: np.dtype, ka: str | None, kb: str | None):
    """(offset, A, B, kinds) per chunk of [start, stop), each side read in place where the kernel can
    (``ka``/``kb`` from ``_kernel_kind``), else converted into a reused buffer."""
    kinds = (ka or work.char) + (kb or work.char)
    chunk = CHUNK if ka and kb else _chunk_size(work)
    size = min(chunk, stop - start)
    sides = [(x.view(np.uint16) if kind == "b" else x, kind, None if kind else np.empty(size, work))
             for x, kind in ((fa, ka), (fb, kb))]
    for s in range(start, stop, chunk):
        e = min(s + chunk, stop)
        pair = []
        for x, kind, buf in sides:
            if kind:
                pair.append(x[s:e])
            else:
                np.copyto(buf[:e - s], x[s:e], casting="unsafe")
                pair.append(buf[:e - s])
        yield s, pair[0], pair[1], kinds


def _scan_kernel(kernel, fa: np.ndarray, fb: np.ndarray, start: int, stop: int, tol: Tolerance, work: np.dtype,
                 detail: bool, counting: bool) -> _Partial:
    """``_scan`` through the C kernel. It reads float32/float16/bfloat16 (or float64) arrays in place;
    other dtypes, byte orders and strides are converted chunk by chunk. A chunk holding NaN or Inf is
    classified by numpy (``_scan_nonfinite``), so those rules live in one place."""
    part = _Partial()
    either = tol.convention == "either"
    if (fa.dtype is work is fb.dtype and stop - start <= CHUNK and fa.strides[0] == fb.strides[0] == work.itemsize):
        chunks = ((start, fa[start:stop], fb[start:stop], work.char * 2),)   # the common case, cheaply
    else:
        chunks = _kernel_chunks(fa, fb, start, stop, work, _kernel_kind(fa, work), _kernel_kind(fb, work))
    for s, A, B, kinds in chunks:
        mode = 0 if not counting else 2 if detail or part.counts is not None else 1
        want = FIRST - len(part.first)
        stats = kernel.scan(A, B, kinds, tol.atol, tol.rtol, either, detail, mode, want)
        if stats is None:
            if kinds[0] in "eb":                  # float16/bfloat16 read in place: numpy widens this chunk
                A = fa[s:s + A.size].astype(work)
            if kinds[1] in "eb":
                B = fb[s:s + B.size].astype(work)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                _scan_nonfinite(part, A, B, s, tol, detail, counting, work)
        else:
            _merge_kernel(part, stats, s)
    return part


def _merge_kernel(part: _Partial, stats: tuple, offset: int) -> None:
    """Fold one chunk's kernel result into ``part`` exactly as the numpy path would."""
    max_abs, i_abs, max_rel, i_rel, budget, i_budget, fails, min_atol, min_rtol, first, counts = stats
    if max_abs > part.max_abs[0]:
        part.max_abs = (max_abs, offset + i_abs)
    # i < 0: every element was 0/0 (equal zeros): 0 there, as _track_max
    if i_rel < 0 and part.max_rel[0] < 0 or i_rel >= 0 and max_rel > part.max_rel[0]:
        part.max_rel = (max(max_rel, 0.0), offset + max(i_rel, 0))
    if i_budget < 0 and part.budget[0] < 0 or i_budget >= 0 and budget > part.budget[0]:
        part.budget = (max(budget, 0.0), offset + max(i_budget, 0))
    part.mismatches += fails
    if min_atol > part.min_atol:
        part.min_atol = min_atol
    if min_rtol > part.min_rtol:
        part.min_rtol = min_rtol
    if first:
        part.first = _first(part.first, [offset + i for i in first])
    if counts is not None:
        part.count(np.frombuffer(counts, np.int64), offset)


@functools.lru_cache(maxsize=8)
def _tiny(work: np.dtype) -> float:
    return float(np.finfo(work).tiny)


def _chunk_size(work: np.dtype) -> int:
    """Elements per chunk: CHUNK float32s' worth of bytes, less when many threads share CHUNK_MEMORY."""
    per_buffer = min(CHUNK * 4, CHUNK_MEMORY // (7 * _threads()))
    return max(1, per_buffer // work.itemsize)


def _track_max(part: _Partial, field: str, w: np.ndarray, offset: int, scale: float) -> float:
    """Raise ``part.<field>`` to the chunk's maximum of ``w / scale`` (NaN ignored) and return the
    chunk's maximum of ``w``. The index is searched only when the maximum improves, which after the
    first chunks is rare, so this costs one reduction."""
    top = np.fmax.reduce(w)
    if top != top:                                # every element is 0/0, i.e. equal zeros: 0 there
        if getattr(part, field)[0] < 0:
            setattr(part, field, (0.0, offset))
        return 0.0
    value = float(top) / scale
    if value > getattr(part, field)[0]:
        setattr(part, field, (value, offset + int((w == top).argmax())))
    return float(top)


def _needed(part: _Partial, d, m, t, w, atol, either: bool) -> None:
    """Smallest atol (at rtol) and rtol (at atol) that pass this chunk; ``t`` holds rtol*|e|.
    Passing chunks cannot raise the maximum over a failing output, so callers only ask for failing
    chunks (or for ``detail``)."""
    if either:
        # fails iff d > atol and d > rtol*|e|: atol must cover every d that exceeds rtol*|e|.
        over = d > t
        part.min_atol = max(part.min_atol, float(d[over].max()) if over.any() else 0.0)
        over = d > atol
        if over.any():
            part.min_rtol = max(part.min_rtol, float(np.max(d[over] / m[over])))
        return
    np.subtract(d, t, out=w)                      # d - rtol*|e| <= atol  <=>  passes
    part.min_atol = max(part.min_atol, float(w.max()))
    np.subtract(d, atol, out=w)
    np.divide(w, m, out=w)                        # (d - atol) / |e| <= rtol  <=>  passes
    top = np.fmax.reduce(w)
    part.min_rtol = max(part.min_rtol, float(top) if top == top else 0.0)


def _scan_nonfinite(part: _Partial, A, B, offset: int, tol: Tolerance, detail: bool, counting: bool,
                    work: np.dtype) -> None:
    """Slow path for a chunk holding NaN or Inf: classify, then scan the finite elements."""
    before = part.failures
    nan_a, nan_b = np.isnan(A), np.isnan(B)
    nan_bad = (nan_a != nan_b) if tol.equal_nan else (nan_a | nan_b)
    inf_bad = (np.isinf(A) | np.isinf(B)) & ~(nan_a | nan_b) & (A != B)
    failing = [np.flatnonzero(nan_bad)[:FIRST], np.flatnonzero(inf_bad)[:FIRST]]
    part.nan_mismatches += int(np.count_nonzero(nan_bad))
    part.inf_mismatches += int(np.count_nonzero(inf_bad))
    part.nan_first = _first(part.nan_first, offset + failing[0])
    part.inf_first = _first(part.inf_first, offset + failing[1])
    finite = np.flatnonzero(np.isfinite(A) & np.isfinite(B))
    with np.errstate(over="ignore", invalid="ignore"):
        overflow = ~np.isfinite(A[finite] - B[finite])
    if overflow.any():
        # Finite values whose difference exceeds the dtype's range (3e38 - -3e38 in float32): |a-b| is
        # inf, as in np.isclose, which fails it unless the bound is inf too. Then the rest, as usual.
        where, finite = finite[overflow], finite[~overflow]
        bound = np.abs(B[where]) * A.dtype.type(tol.rtol)
        bound = np.maximum(bound, A.dtype.type(tol.atol)) if tol.convention == "either" else bound + A.dtype.type(tol.atol)
        fails = bound < np.inf
        first = (math.inf, offset + int(where[0]))
        need = math.inf if fails.any() else 0.0
        part.merge(_Partial(max_abs=first, max_rel=first, budget=first, mismatches=int(np.count_nonzero(fails)),
                            min_atol=need, min_rtol=need))
        failing.append(where[fails][:FIRST])
    if finite.size:
        sub = _scan(A[finite], B[finite], 0, finite.size, tol, A.dtype, detail, counting=False)
        for field in ("max_abs", "max_rel", "budget"):
            value, flat = getattr(sub, field)
            if flat >= 0:
                setattr(sub, field, (value, offset + int(finite[flat])))
        failing.append(finite[np.asarray(sub.first, np.intp)])
        sub.first = ()
        part.merge(sub)
    part.first = _first(part.first, offset + np.sort(np.concatenate(failing))[:FIRST])
    if counting and (detail or part.counts is not None or part.failures > before):
        with np.errstate(invalid="ignore", over="ignore"):
            part.count(_bin_counts(np.abs(A - B), work), offset)


# --------------------------------------------------------------------------------- decade histogram

class _Decades(Record):
    """Tables that map |a-b| to its histogram bin in one lookup, exactly at powers of ten.

    Bins: 0 for |a-b| = 0, then one per decade ``kmin``..``kmax`` of the dtype (``1e-45``..``1e38``
    for float32), then one for NaN/Inf. Rows: 0 for zero, 1..nmant for the subnormal octaves
    [2**(r-1), 2**r) of the bit pattern, then nmant + e for exponent e. Per row, ``lo`` is the bin of
    the octave's lowest value and ``split`` the bit pattern of the power of ten inside the octave
    (an octave holds at most one), or the largest unsigned value: bin = lo + (bits >= split).
    """

    __slots__ = ("kmin", "bins", "lo", "split", "nmant", "uint")

    def __init__(self, kmin: int, bins: int, lo: np.ndarray, split: np.ndarray, nmant: int, uint: np.dtype):
        self.kmin = kmin
        self.bins = bins
        self.lo = lo
        self.split = split
        self.nmant = nmant
        self.uint = uint


_DECADES: dict[str, _Decades] = {}
_KERNEL_DECADES: set = set()   # dtype chars whose tables the loaded kernel holds


def _decades(work: np.dtype) -> _Decades:
    """The tables for ``work`` (float32 or float64), built once and handed to the kernel (also when the numpy
    path built them first, as in a process that switched paths)."""
    tables = _DECADES.get(work.char)
    if tables is None:
        tables = _build_decades(work)
    if _kernel is not None and work.char not in _KERNEL_DECADES:
        _kernel.set_decades(work.char, tables.lo.astype(np.uint32).tobytes(), tables.split.tobytes(), tables.bins)
        _KERNEL_DECADES.add(work.char)
    return tables


# The bit patterns of _decade_floor(k, float32) for k = -45 .. 38 (the smallest float32 >= 10**k), as computed
# by _decade_floor (tests/test_compare.py checks they agree): float32 is what nearly every check compares in,
# and computing them exactly costs a few ms per process, more than a test suite's other fixed costs.
_FLOAT32_KMIN = -45
_FLOAT32_FLOORS = (
    0x00000001, 0x00000008, 0x00000048, 0x000002ca, 0x00001be1, 0x000116c3, 0x000ae398, 0x006ce3ef, 0x02081ceb,
    0x03aa2425, 0x0554ad2e, 0x0704ec3d, 0x08a6274c, 0x0a4fb11f, 0x0c01ceb4, 0x0da24260, 0x0f4ad2f8, 0x10fd87b6,
    0x129e74d2, 0x14461207, 0x15f79688, 0x179abe15, 0x19416d9b, 0x1af1c901, 0x1c971da1, 0x1e3ce509, 0x1fec1e4b,
    0x219392ef, 0x233877ab, 0x24e69595, 0x26901d7d, 0x283424dd, 0x29e12e14, 0x2b8cbccd, 0x2d2fec00, 0x2edbe6ff,
    0x30897060, 0x322bcc78, 0x33d6bf95, 0x358637be, 0x3727c5ad, 0x38d1b718, 0x3a83126f, 0x3c23d70b, 0x3dcccccd,
    0x3f800000, 0x41200000, 0x42c80000, 0x447a0000, 0x461c4000, 0x47c35000, 0x49742400, 0x4b189680, 0x4cbebc20,
    0x4e6e6b28, 0x501502f9, 0x51ba43b8, 0x5368d4a6, 0x551184e8, 0x56b5e621, 0x58635faa, 0x5a0e1bca, 0x5bb1a2bd,
    0x5d5e0b6c, 0x5f0ac724, 0x60ad78ec, 0x6258d727, 0x64078679, 0x65a96817, 0x6753c21c, 0x69045952, 0x6aa56fa6,
    0x6c4ecb90, 0x6e013f3a, 0x6fa18f08, 0x7149f2ca, 0x72fc6f7d, 0x749dc5ae, 0x7645371a, 0x77f684e0, 0x799a130c,
    0x7b4097cf, 0x7cf0bdc3, 0x7e96769a,
)


def _build_decades(work: np.dtype) -> _Decades:
    info = np.finfo(work)
    uint = np.dtype(f"u{work.itemsize}")
    nmant, top = info.nmant, np.iinfo(uint).max
    if work == np.float32:
        kmin, floors = _FLOAT32_KMIN, np.array(_FLOAT32_FLOORS, uint)
    else:
        kmin, kmax = _decade(float(info.smallest_subnormal), work), _decade(float(info.max), work)
        floors = np.array([_decade_floor(k, work) for k in range(kmin, kmax + 1)], work).view(uint)
    one = uint.type(1)
    low = np.concatenate([one << np.arange(nmant, dtype=uint),                        # subnormal octaves
                          np.arange(1, 1 << (work.itemsize * 8 - 1 - nmant), dtype=uint) << uint.type(nmant)])
    high = np.concatenate([low[1:], [top]])
    decade = np.searchsorted(floors, low, side="right") - 1          # index into floors of each octave's lowest value
    above = floors[np.minimum(decade + 1, floors.size - 1)]
    split = np.where((decade + 1 < floors.size) & (above < high), above, top).astype(uint)
    lo = (1 + decade).astype(np.intp)
    bins = floors.size + 2
    lo[-1], split[-1] = bins - 1, top                                # exponent all ones: Inf and NaN
    tables = _Decades(kmin, bins, np.concatenate([[0], lo]), np.concatenate([[top], split]).astype(uint), nmant, uint)
    _DECADES[work.char] = tables
    return tables


def _bin_counts(d: np.ndarray, work: np.dtype) -> np.ndarray:
    """Histogram counts of |a-b| (``d``, contiguous, in ``work``) by the bins of ``_decades``."""
    t = _decades(work)
    u = d.view(t.uint) & t.uint.type(np.iinfo(t.uint).max >> 1)
    exponent = u >> t.uint.type(t.nmant)
    row = exponent.astype(np.intp)
    row += t.nmant
    sub = exponent == 0
    if sub.any():                                                     # zero and subnormals: the bit length
        row[sub] = np.frexp(u[sub].astype(np.float64))[1]
    return np.bincount(t.lo[row] + (u >= t.split[row]), minlength=t.bins)


def _histogram(fa, fb, start: int, stop: int, work: np.dtype) -> np.ndarray:
    """Histogram counts of [start, stop) alone: for chunks that passed before an output's first failure."""
    counts = np.zeros(_decades(work).bins, np.int64)
    if _kernel is not None:
        for _, A, B, kinds in _kernel_chunks(fa, fb, start, stop, work, _kernel_kind(fa, work), _kernel_kind(fb, work)):
            counts += np.frombuffer(_kernel.histogram(A, B, kinds), np.int64)
        return counts
    chunk = _chunk_size(work)
    d = np.empty(min(chunk, stop - start), work)
    with np.errstate(invalid="ignore", over="ignore"):
        for s in range(start, stop, chunk):
            e = min(s + chunk, stop)
            np.subtract(fa[s:e], fb[s:e], out=d[:e - s], dtype=work, casting="unsafe")
            counts += _bin_counts(np.abs(d[:e - s], out=d[:e - s]), work)
    return counts


def _decade_bins(counts: np.ndarray, work: np.dtype) -> list[tuple[str, int]]:
    """The report's histogram: ("0", equal elements) then ("1e<k>", count) per non-empty decade."""
    kmin = _decades(work).kmin
    bins = [("0", int(counts[0]))] if counts[0] else []
    return bins + [(f"1e{kmin + i - 1}", int(c)) for i, c in enumerate(counts[:-1]) if i and c]


def _decade(x: float, work: np.dtype) -> int:
    """floor(log10(x)) for a positive value of ``work``, exactly (log10 can round across the integer)."""
    k = math.floor(math.log10(x))
    if x < _decade_floor(k, work):
        return k - 1
    if x >= _decade_floor(k + 1, work):
        return k + 1
    return k


@functools.lru_cache(maxsize=4096)
def _decade_floor(k: int, work: np.dtype):
    """The smallest value of ``work`` that is >= 10**k, so that ``x >= it`` <=> ``x >= 10**k``.
    Compared exactly in integers (a float is n/d): no ``fractions`` import, whose ``decimal`` costs ms."""
    if k > math.log10(np.finfo(work).max):
        return work.type(np.inf)

    def at_least(value) -> bool:                  # value >= 10**k, exactly
        n, d = float(value).as_integer_ratio()
        return n >= d * 10 ** k if k >= 0 else n * 10 ** -k >= d

    value = work.type(float(10 ** k) if k >= 0 else 1 / 10 ** -k)    # int division rounds correctly
    while not at_least(value):
        value = np.nextafter(value, work.type(np.inf))
    while value > 0 and at_least(np.nextafter(value, work.type(0))):
        value = np.nextafter(value, work.type(0))
    return value


def _statistics(report: OutputReport, fa, fb, work, tol: Tolerance) -> None:
    """The optional whole-output checks: cosine similarity and limits on |a-b| statistics."""
    if (tol.cosine is None and tol.max_abs is None and tol.mean_abs is None and tol.median_abs is None
            and tol.percentile is None):
        return                                    # the common case, without building a list
    wanted = [f for f in ("cosine", "max_abs", "mean_abs", "median_abs", "percentile") if getattr(tol, f) is not None]
    a, b = fa.astype(np.float64), fb.astype(np.float64)
    finite = np.isfinite(a) & np.isfinite(b)
    a, b = a[finite], b[finite]
    d = np.abs(a - b)
    stats = report.statistics
    for field in wanted:
        if field == "cosine":
            na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
            value = 1.0 if na == nb == 0 else (float(a @ b) / (na * nb) if na and nb else 0.0)
            stats["cosine"] = value
            if value < tol.cosine:
                report.statistic_failures.append(f"cosine similarity {value:.6g} < {tol.cosine:g}")
            continue
        if field == "percentile":
            q, limit = tol.percentile
            value = float(np.percentile(d, q)) if d.size else 0.0
            stats[f"p{q:g}_abs"] = value
        else:
            value = float({"max_abs": np.max, "mean_abs": np.mean, "median_abs": np.median}[field](d)) if d.size else 0.0
            stats[field] = value
            limit = getattr(tol, field)
        if value > limit:
            label = f"p{tol.percentile[0]:g} |a-b|" if field == "percentile" else f"{field.replace('_abs', '')} |a-b|"
            report.statistic_failures.append(f"{label} {value:.6g} > {limit:g}")


# --------------------------------------------------------------------------------- exact comparison

def _compare_exact(report: OutputReport, a: np.ndarray, b: np.ndarray) -> None:
    fa, fb = a.reshape(-1), b.reshape(-1)
    mismatches, first = 0, []
    worst = (-1.0, -1)
    for s in range(0, fb.size, CHUNK):
        ne = fa[s:s + CHUNK] != fb[s:s + CHUNK]
        count = int(np.count_nonzero(ne))
        if count:
            idx = np.flatnonzero(ne)
            first = _first(first, s + idx[:FIRST])
            diffs = np.abs(fa[s:s + CHUNK][idx].astype(np.float64) - fb[s:s + CHUNK][idx].astype(np.float64))
            k = int(diffs.argmax())
            if diffs[k] > worst[0]:
                worst = (float(diffs[k]), s + int(idx[k]))
            mismatches += count
    report.mismatches = mismatches
    if mismatches:
        value, flat = worst
        report.max_abs = Extreme(value, unravel(flat, b.shape),
                                 float(fa[flat]), float(fb[flat]), 0.0)
        report.failing_indices = tuple(unravel(i, b.shape) for i in first)
        report.passed, report.problem = False, "values"
    else:
        report.max_abs = None


# ------------------------------------------------------------------------------------- threading

_pool = None


@functools.lru_cache(maxsize=1)
def _threads() -> int:
    """Threads for one large output (os.cpu_count() reads /sys: ~10 us, so asked once)."""
    return min(os.cpu_count() or 1, MAX_THREADS)


def _executor():
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(_threads(), thread_name_prefix="pytest-trt-compare")
    return _pool


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    per = -(-n // parts)
    per = -(-per // CHUNK) * CHUNK
    return [(s, min(s + per, n)) for s in range(0, n, per)]


# ------------------------------------------------------------------------------------- messages

def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.6g}" if abs(x) < 1e6 or not math.isfinite(x) else f"{x:.4e}"


def _index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, index)) + ")" if len(index) != 1 else f"({index[0]},)"


def _indices(indices: tuple[tuple[int, ...], ...], count: int) -> str:
    """The listed indices, and "..." when there are more than listed."""
    return ", ".join(map(_index, indices)) + (", ..." if count > len(indices) else "")


def _share(share: float) -> str:
    """A share of the bound as a percentage; digits enough that a failing one never reads 100%."""
    if math.isinf(share) or math.isnan(share):
        return str(share)
    if share >= 10:
        return f"{100 * share:.0f}%"
    digits = 4
    while share > 1 and float(f"{100 * share:.{digits}g}") <= 100 and digits < 17:
        digits += 1
    return f"{100 * share:.{digits}g}%"


def _at(e: Extreme) -> str:
    """actual, expected and the bound at an extreme, with the share of the bound used."""
    bound = "" if e.allowed is None else f"; allowed {_fmt(e.allowed)}" + (
        f", {_share(e.share)} of it" if e.share is not None else "")
    return f"(actual {_fmt(e.actual)}, expected {_fmt(e.expected)}{bound})"


def format_output(r: OutputReport) -> str:
    """The failure (or pass) text for one output; one header line, then indented details."""
    head = f"output {r.name!r}"
    if r.problem == "missing":
        return f"{head}: missing from the actual outputs (expected {r.expected_dtype}{list(r.expected_shape)})"
    if r.problem == "unexpected":
        return f"{head}: present in the actual outputs but not in the expected ones"
    if r.problem == "shape":
        return (f"{head}: shape mismatch: actual {list(r.actual_shape)} vs expected {list(r.expected_shape)} "
                "(values not compared)")
    if r.problem == "dtype":
        return (f"{head}: dtype mismatch: actual {r.actual_dtype} vs expected {r.expected_dtype} "
                "(values not compared; floats compare with floats, integers with integers)")
    lines = [f"{head}: {'ok' if r.passed else 'values differ'}"
             + (f" (dtypes {r.actual_dtype} vs {r.expected_dtype})" if r.actual_dtype != r.expected_dtype else "")]
    pct = 100.0 * r.mismatches / r.size if r.size else 0.0
    lines.append(f"  mismatched elements: {r.mismatches} / {r.size} ({pct:.3g}%)")
    nonfinite = r.nan_mismatches + r.inf_mismatches
    if nonfinite:
        lines.append("  of which " + ", ".join(
            f"{kind} mismatches: {count}" + (f" at {_indices(indices, count)}" if indices else "")
            for kind, count, indices in (("NaN", r.nan_mismatches, r.nan_indices),
                                         ("Inf", r.inf_mismatches, r.inf_indices))))
    if r.worst is not None and not r.exact:
        e = r.worst
        lines.append(f"  largest share of its bound: {_share(e.share)} at index {_index(e.index)} (actual "
                     f"{_fmt(e.actual)}, expected {_fmt(e.expected)}, |a-b| {_fmt(e.value)}, allowed {_fmt(e.allowed)})")
    if r.max_abs is not None:
        e = r.max_abs
        lines.append(f"  greatest absolute difference: {_fmt(e.value)} at index {_index(e.index)} {_at(e)}")
    if r.max_rel is not None:
        e = r.max_rel
        lines.append(f"  greatest relative difference: {_fmt(e.value)} at index {_index(e.index)} {_at(e)}")
    if r.failing_indices:
        lines.append(f"  {'first failing indices' if r.mismatches > len(r.failing_indices) else 'failing indices'}: "
                     + _indices(r.failing_indices, r.mismatches))
    for failure in r.statistic_failures:
        lines.append(f"  statistic check failed: {failure}")
    if r.histogram:
        lines.append("  |a-b| by decade: " + "  ".join(f"{k}:{v}" for k, v in r.histogram))
    t = r.tolerance
    if t is not None and not r.exact:
        if not r.passed and r.min_atol is not None and t.elementwise:
            finite_failures = r.mismatches - nonfinite
            if nonfinite:
                lines.append("  no tolerance passes NaN or Inf mismatches")
            if math.isinf(r.min_atol):
                lines.append("  no finite tolerance passes: |a-b| overflows the dtype's range")
            elif finite_failures:
                rtol_text = "no rtol (an expected value is 0)" if math.isinf(r.min_rtol) else f"rtol >= {_fmt(r.min_rtol)}"
                lines.append(f"  {'the other elements ' if nonfinite else ''}would pass with atol >= "
                             f"{_fmt(r.min_atol)} (at rtol {t.rtol:g}) or {rtol_text} (at atol {t.atol:g})")
        lines.append(f"  tolerance: {t.describe()}; convention {t.convention}: {CONVENTIONS[t.convention]}")
    elif r.problem == "values":
        lines.append("  integers and bools compare exactly")
    return "\n".join(lines)


def format_report(report: ComparisonReport, limit: int = 20) -> str:
    """Failing outputs in full (at most ``limit``), then a one-line list of the ones that passed."""
    failed = report.failed
    head = (f"{report.actual_label} vs {report.expected_label}: "
            + (f"{len(failed)} of {len(report.outputs)} outputs differ" if failed else f"all {len(report.outputs)} outputs match"))
    parts = [head] + [format_output(o) for o in failed[:limit]]
    if len(failed) > limit:
        parts.append(f"... and {len(failed) - limit} more failing outputs: " + ", ".join(o.name for o in failed[limit:]))
    passed = [o.name for o in report.outputs if o.passed]
    if passed and failed:
        parts.append(f"outputs that match: {', '.join(passed[:50])}" + (" ..." if len(passed) > 50 else ""))
    return "\n".join(parts)
