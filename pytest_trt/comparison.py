"""Comparison of output pairs: one chunked, fused pass per output, and reports that explain failures.

Each output is scanned in fixed-size chunks with reused buffers (no full-size temporaries); chunks
produce partial statistics that merge, so large outputs are split across threads. Each chunk goes
through the C kernel (``_scan.c``: one read of both arrays, GIL released) when it was built at
install, else through nine numpy operations; both give the same reports. ``PYTEST_TRT_COMPARE=numpy``
forces the numpy path. Shape and dtype problems are reported as such, never as numeric failures.
Integers and bools compare exactly; float16/bfloat16/float8 compare in float32.
"""
from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping

import numpy as np

from . import comparator_kernel
from .records import Record
from .tolerance import CONVENTIONS, Tolerance, resolve

_kernel = comparator_kernel.load()      # the C kernel module, or None: the numpy path (see comparator_kernel)

CHUNK = 1 << 18                 # float32 elements per chunk at most: 1 MiB buffers (fewer for wider dtypes);
                                # large, so that threads seldom wait for each other's GIL hand-over
CHUNK_MEMORY = 14 << 20         # all threads' chunk buffers together (7 per thread) stay under this
PARALLEL_MIN = 1 << 21          # outputs at least this large are split across threads
MAX_THREADS = 4                 # 2 threads get 1 MiB buffers, 4 threads 512 KiB: peak extra memory < 16 MiB
HISTOGRAM_SAMPLE = 1_000_000    # the error histogram looks at most at this many elements
HISTOGRAM_BLOCK = 16384         # in contiguous blocks of this many, spread evenly over larger outputs
MARGIN = 1e-5                   # chunks this close to the bound are decided by the exact formula


class Extreme(Record):
    """Where a statistic peaks: its value, the element's index, both values, and the bound there."""

    __slots__ = ("value", "index", "actual", "expected", "allowed")

    def __init__(self, value: float, index: tuple[int, ...], actual: float, expected: float,
                 allowed: float | None = None):
        self.value = value
        self.index = index
        self.actual = actual
        self.expected = expected
        self.allowed = allowed


class OutputReport(Record):
    """The comparison of one output: verdict, kind of problem, and the statistics behind it."""

    __slots__ = ("name", "passed", "problem", "actual_shape", "expected_shape", "actual_dtype", "expected_dtype",
                 "tolerance", "size", "mismatches", "nan_mismatches", "inf_mismatches", "max_abs", "max_rel",
                 "budget", "min_atol", "min_rtol", "histogram", "histogram_sampled", "statistics",
                 "statistic_failures", "exact")

    def __init__(self, name: str, passed: bool, problem: str | None, actual_shape: tuple | None,
                 expected_shape: tuple | None, actual_dtype: str | None, expected_dtype: str | None,
                 tolerance: Tolerance | None, size: int = 0, mismatches: int = 0, nan_mismatches: int = 0,
                 inf_mismatches: int = 0, max_abs: Extreme | None = None, max_rel: Extreme | None = None,
                 budget: float = 0.0, min_atol: float | None = None, min_rtol: float | None = None,
                 histogram: list[tuple[str, int]] | None = None, histogram_sampled: int | None = None,
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
        self.max_abs = max_abs
        self.max_rel = max_rel
        self.budget = budget                # greatest |a-b| / allowed bound over finite elements (> 1 fails)
        self.min_atol = min_atol            # smallest atol that passes at the given rtol
        self.min_rtol = min_rtol            # smallest rtol that passes at the given atol
        self.histogram = histogram
        self.histogram_sampled = histogram_sampled
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
    from .tolerance import check_tolerances, check_value

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


@functools.lru_cache(maxsize=64)
def dtype_name(dtype: np.dtype) -> str:
    """``dtype.name``, cached: numpy builds that string on every access (microseconds per call)."""
    return dtype.name


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
    """Statistics of one run of chunks; ``merge`` combines runs. Peaks are (value, flat index)."""

    __slots__ = ("max_abs", "max_rel", "budget", "mismatches", "nan_mismatches", "inf_mismatches", "min_atol",
                 "min_rtol", "finite")

    def __init__(self, max_abs: tuple[float, int] = (-1.0, -1), max_rel: tuple[float, int] = (-1.0, -1),
                 budget: tuple[float, int] = (-1.0, -1), mismatches: int = 0, nan_mismatches: int = 0,
                 inf_mismatches: int = 0, min_atol: float = 0.0, min_rtol: float = 0.0, finite: int = 0):
        self.max_abs = max_abs
        self.max_rel = max_rel
        self.budget = budget
        self.mismatches = mismatches
        self.nan_mismatches = nan_mismatches
        self.inf_mismatches = inf_mismatches
        self.min_atol = min_atol
        self.min_rtol = min_rtol
        self.finite = finite

    def merge(self, other: "_Partial") -> None:
        self.max_abs = max(self.max_abs, other.max_abs, key=lambda t: t[0])
        self.max_rel = max(self.max_rel, other.max_rel, key=lambda t: t[0])
        self.budget = max(self.budget, other.budget, key=lambda t: t[0])
        self.mismatches += other.mismatches
        self.nan_mismatches += other.nan_mismatches
        self.inf_mismatches += other.inf_mismatches
        self.min_atol = max(self.min_atol, other.min_atol)
        self.min_rtol = max(self.min_rtol, other.min_rtol)
        self.finite += other.finite


def _compare_float(report: OutputReport, a: np.ndarray, b: np.ndarray, tol: Tolerance, detail: bool) -> None:
    work = _work_dtype(a.dtype, b.dtype)
    fa, fb = a.reshape(-1), b.reshape(-1)
    n = fb.size
    if n == 0:
        return
    if n >= PARALLEL_MIN and _threads() > 1:
        parts = _split(n, _threads())
        results = list(_executor().map(lambda r: _scan(fa, fb, r[0], r[1], tol, work, detail), parts))
    else:
        results = [_scan(fa, fb, 0, n, tol, work, detail)]
    total = results[0]
    for part in results[1:]:
        total.merge(part)

    def extreme(stat, allowed=False):
        value, flat = stat
        if flat < 0:
            return None
        exp = float(fb[flat])
        bound = _bound(abs(exp), tol) if allowed else None
        return Extreme(float(value), unravel(flat, b.shape),
                       float(fa[flat]), exp, bound)

    report.max_abs = extreme(total.max_abs, allowed=True)
    report.max_rel = extreme(total.max_rel, allowed=True)
    report.budget = max(total.budget[0], 0.0)
    report.mismatches = total.mismatches + total.nan_mismatches + total.inf_mismatches
    report.nan_mismatches, report.inf_mismatches = total.nan_mismatches, total.inf_mismatches
    if not tol.elementwise:
        report.mismatches = report.nan_mismatches + report.inf_mismatches
    failing = report.mismatches > 0
    if failing or detail:
        report.min_atol, report.min_rtol = total.min_atol, total.min_rtol
        report.histogram, report.histogram_sampled = _histogram(fa, fb, work)
    _statistics(report, fa, fb, work, tol)
    report.passed = report.mismatches == 0 and not report.statistic_failures
    if not report.passed:
        report.problem = "values" if report.mismatches else "statistics"


def _bound(abs_expected: float, tol: Tolerance) -> float:
    if tol.convention == "either":
        return max(tol.atol, tol.rtol * abs_expected)
    return tol.atol + tol.rtol * abs_expected


def _scan(fa: np.ndarray, fb: np.ndarray, start: int, stop: int, tol: Tolerance, work: np.dtype,
          detail: bool) -> _Partial:
    """One fused pass over elements [start, stop) in chunks; see module docstring.

    Per chunk the common (passing) case costs nine array operations: |a-b|, its maximum, |e|, the
    relative difference and its maximum, and the share of the bound used, computed as
    ``(d / rtol) / (|e| + atol/rtol)`` (``max(|e|, atol/rtol)`` for "either"), one operation fewer
    than ``d / (atol + rtol*|e|)``. That rescaled share only clears chunks far from the bound; any
    other chunk is decided again with the exact formula, so verdicts and mismatch counts agree with
    ``np.isclose`` bit for bit. Tolerances whose bound may be subnormal (atol = 0) take the exact path.
    """
    if _kernel is not None:
        return _scan_kernel(_kernel, fa, fb, start, stop, tol, work, detail)
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
                _scan_nonfinite(part, A, B, s, tol, detail)
                continue
            part.finite += k
            if d[i] > part.max_abs[0]:
                part.max_abs = (float(d[i]), s + i)
            np.abs(B, out=m)                      # m = |expected|
            np.divide(d, m, out=w)                # w = relative difference (NaN where both are 0)
            _track_max(part, "max_rel", w, s, 1.0)
            all_fail = False
            if fast:
                (np.maximum if either else np.add)(m, shift, out=t)
                np.divide(d, t, out=t)            # t = share of the bound used, times rtol
                scaled = _track_max(part, "budget", t, s, float(rtol))
                if scaled <= lo and not detail:
                    continue                      # every element is well within its bound
                all_fail = bool(np.minimum.reduce(t) > hi)   # a NaN (0/0) propagates: then not all fail
            np.multiply(m, rtol, out=t)           # t = rtol * |expected|
            (np.maximum if either else np.add)(t, atol, out=w)   # w = the bound, as np.isclose computes it
            fails = k if all_fail else int(np.count_nonzero(np.greater(d, w, out=f_buf[:k])))
            if not fast:
                np.divide(d, w, out=w)            # share of the bound used (inf where the bound is 0)
                _track_max(part, "budget", w, s, 1.0)
            part.mismatches += fails
            if tol.elementwise and (fails or detail):
                _needed(part, d, m, t, w, atol, either)
    return part


def _scan_kernel(kernel, fa: np.ndarray, fb: np.ndarray, start: int, stop: int, tol: Tolerance, work: np.dtype,
                 detail: bool) -> _Partial:
    """``_scan`` through the C kernel. It reads contiguous arrays of the work dtype in place (no buffers);
    other dtypes, byte orders and strides are converted chunk by chunk. A chunk holding NaN or Inf is
    classified by numpy (``_scan_nonfinite``), so those rules live in one place."""
    part = _Partial()
    in_place_a = fa.dtype == work and fa.flags.c_contiguous
    in_place_b = fb.dtype == work and fb.flags.c_contiguous
    chunk = CHUNK if in_place_a and in_place_b else _chunk_size(work)
    size = min(chunk, stop - start)
    a_buf = None if in_place_a else np.empty(size, work)
    b_buf = None if in_place_b else np.empty(size, work)
    either = tol.convention == "either"
    for s in range(start, stop, chunk):
        e = min(s + chunk, stop)
        A, B = fa[s:e], fb[s:e]
        if a_buf is not None:
            A = a_buf[:e - s]
            np.copyto(A, fa[s:e], casting="unsafe")
        if b_buf is not None:
            B = b_buf[:e - s]
            np.copyto(B, fb[s:e], casting="unsafe")
        stats = kernel.scan(A, B, tol.atol, tol.rtol, either, detail)
        if stats is None:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                _scan_nonfinite(part, A, B, s, tol, detail)
        else:
            _merge_kernel(part, stats, s, e - s)
    return part


def _merge_kernel(part: _Partial, stats: tuple, offset: int, size: int) -> None:
    """Fold one chunk's kernel result into ``part`` exactly as the numpy path would."""
    max_abs, i_abs, max_rel, i_rel, budget, i_budget, fails, min_atol, min_rtol = stats
    part.finite += size
    if max_abs > part.max_abs[0]:
        part.max_abs = (max_abs, offset + i_abs)
    for field, value, index in (("max_rel", max_rel, i_rel), ("budget", budget, i_budget)):
        if index < 0:                         # every element was 0/0 (equal zeros): 0 there, as _track_max
            if getattr(part, field)[0] < 0:
                setattr(part, field, (0.0, offset))
        elif value > getattr(part, field)[0]:
            setattr(part, field, (value, offset + index))
    part.mismatches += fails
    part.min_atol = max(part.min_atol, min_atol)
    part.min_rtol = max(part.min_rtol, min_rtol)


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


def _scan_nonfinite(part: _Partial, A, B, offset: int, tol: Tolerance, detail: bool) -> None:
    """Slow path for a chunk holding NaN or Inf: classify, then scan the finite elements."""
    nan_a, nan_b = np.isnan(A), np.isnan(B)
    if tol.equal_nan:
        part.nan_mismatches += int(np.count_nonzero(nan_a != nan_b))
    else:
        part.nan_mismatches += int(np.count_nonzero(nan_a | nan_b))
    inf_any = (np.isinf(A) | np.isinf(B)) & ~(nan_a | nan_b)
    part.inf_mismatches += int(np.count_nonzero(inf_any & (A != B)))
    finite = np.flatnonzero(np.isfinite(A) & np.isfinite(B))
    with np.errstate(over="ignore", invalid="ignore"):
        overflow = ~np.isfinite(A[finite] - B[finite])
    if overflow.any():
        # Finite values whose difference exceeds the dtype's range (3e38 - -3e38 in float32): |a-b| is
        # inf, as in np.isclose, which fails it unless the bound is inf too. Then the rest, as usual.
        where, finite = finite[overflow], finite[~overflow]
        bound = np.abs(B[where]) * A.dtype.type(tol.rtol)
        bound = np.maximum(bound, A.dtype.type(tol.atol)) if tol.convention == "either" else bound + A.dtype.type(tol.atol)
        fails = int(np.count_nonzero(bound < np.inf))
        first = (math.inf, offset + int(where[0]))
        need = math.inf if fails else 0.0
        part.merge(_Partial(max_abs=first, max_rel=first, budget=first, mismatches=fails, min_atol=need, min_rtol=need))
    if finite.size:
        sub = _scan(A[finite], B[finite], 0, finite.size, tol, A.dtype, detail)
        for field in ("max_abs", "max_rel", "budget"):
            value, flat = getattr(sub, field)
            if flat >= 0:
                setattr(sub, field, (value, offset + int(finite[flat])))
        part.merge(sub)


def _histogram(fa, fb, work) -> tuple[list[tuple[str, int]], int | None]:
    """Counts of |a-b| per decade: exact up to HISTOGRAM_SAMPLE elements, else over evenly spaced
    contiguous blocks (cheap to read, unlike a strided sample). Decades are counted with one
    comparison per decade boundary rather than a logarithm per element."""
    n = fb.size
    chunk = _chunk_size(work)
    if n <= HISTOGRAM_SAMPLE:
        spans = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    else:
        block = min(chunk, HISTOGRAM_BLOCK)
        starts = np.linspace(0, n - block, HISTOGRAM_SAMPLE // block).astype(np.int64)
        spans = [(int(s), int(s) + block) for s in starts]
    d_buf = np.empty(min(chunk, n), work)
    zeros, sampled, above = 0, 0, {}     # above[k]: elements >= 10**k, for the decades seen
    with np.errstate(invalid="ignore", over="ignore"):
        for s, e in spans:
            d = d_buf[:e - s]
            np.subtract(fa[s:e], fb[s:e], out=d, dtype=work, casting="unsafe")
            np.abs(d, out=d)
            sampled += d.size
            if not np.isfinite(d).all():
                d = d[np.isfinite(d)]
            positive = d[d > 0]
            zeros += d.size - positive.size
            if not positive.size:
                continue
            low, high = _decade(float(positive.min()), work), _decade(float(positive.max()), work)
            above[low] = above.get(low, 0) + positive.size
            for k in range(low + 1, high + 1):
                above[k] = above.get(k, 0) + int(np.count_nonzero(positive >= _decade_floor(k, work)))
    bins = [("0", zeros)] if zeros else []
    decades = sorted(above)
    for k in decades:
        count = above[k] - above.get(k + 1, 0)
        if count:
            bins.append((f"1e{k}", count))
    return bins, (sampled if sampled < n else None)


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
    """The smallest value of ``work`` that is >= 10**k, so that ``x >= it`` <=> ``x >= 10**k``."""
    from fractions import Fraction

    target = Fraction(10) ** k
    value = work.type(float(target)) if k > -330 else work.type(0)
    while Fraction(float(value)) < target:
        value = np.nextafter(value, work.type(np.inf))
    while value > 0 and Fraction(float(np.nextafter(value, work.type(0)))) >= target:
        value = np.nextafter(value, work.type(0))
    return value


def _statistics(report: OutputReport, fa, fb, work, tol: Tolerance) -> None:
    """The optional whole-output checks: cosine similarity and limits on |a-b| statistics."""
    wanted = [f for f in ("cosine", "max_abs", "mean_abs", "median_abs", "percentile") if getattr(tol, f) is not None]
    if not wanted:
        return
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
    mismatches, first = 0, -1
    worst = (-1.0, -1)
    for s in range(0, fb.size, CHUNK):
        ne = fa[s:s + CHUNK] != fb[s:s + CHUNK]
        count = int(np.count_nonzero(ne))
        if count:
            idx = np.flatnonzero(ne)
            if first < 0:
                first = s + int(idx[0])
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
    if r.nan_mismatches or r.inf_mismatches:
        lines.append(f"  of which NaN mismatches: {r.nan_mismatches}, Inf mismatches: {r.inf_mismatches}")
    if r.max_abs is not None:
        e = r.max_abs
        lines.append(f"  greatest absolute difference: {_fmt(e.value)} at index {_index(e.index)} "
                     f"(actual {_fmt(e.actual)}, expected {_fmt(e.expected)}; allowed {_fmt(e.allowed)})")
    if r.max_rel is not None:
        e = r.max_rel
        lines.append(f"  greatest relative difference: {_fmt(e.value)} at index {_index(e.index)} "
                     f"(actual {_fmt(e.actual)}, expected {_fmt(e.expected)}; allowed {_fmt(e.allowed)})")
    for failure in r.statistic_failures:
        lines.append(f"  statistic check failed: {failure}")
    if r.histogram:
        sampled = f" (sample of {r.histogram_sampled} elements in evenly spread blocks)" if r.histogram_sampled else ""
        lines.append("  |a-b| by decade" + sampled + ": " + "  ".join(f"{k}:{v}" for k, v in r.histogram))
    t = r.tolerance
    if t is not None and not r.exact:
        if not r.passed and r.min_atol is not None and t.elementwise:
            if math.isinf(r.min_atol):
                lines.append("  no finite tolerance passes: |a-b| overflows the dtype's range")
            else:
                rtol_text = "no rtol (an expected value is 0)" if math.isinf(r.min_rtol) else f"rtol >= {_fmt(r.min_rtol)}"
                lines.append(f"  would pass with atol >= {_fmt(r.min_atol)} (at rtol {t.rtol:g}) "
                             f"or {rtol_text} (at atol {t.atol:g})")
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
