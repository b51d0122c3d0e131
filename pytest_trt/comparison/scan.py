"""The element scan of a float pair: one chunked, fused pass per output, on the C kernel or in numpy.

Each output is scanned in fixed-size chunks with reused buffers (no full-size temporaries); chunks
produce partial statistics (``_Partial``) that merge, so large outputs are split across threads. Each
chunk goes through the C kernel (``_scan.c``: one read of both arrays, GIL released) when it was built
at install, else through nine numpy operations; both give the same statistics. ``PYTEST_TRT_COMPARE=numpy``
forces the numpy path. Chunks holding NaN or Inf are classified by numpy on both paths.

A failing output also needs the first failing indices and the exact |a-b| histogram by decade. The
kernel computes them in the same pass from the first failing element on; chunks that passed before it
are counted afterwards (``decade_counts``: a second read only of what came before the first failure).
Integers and bools are scanned for equality (``exact``).

Longer than most modules because the numpy path and the kernel path are one algorithm
written twice whose results must agree bit for bit: they share ``_Partial``, the non-finite path and
the chunking, and are kept side by side so that a change to one is made to the other.
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np

from pytest_trt.comparison import kernel
from pytest_trt.comparison.stats import bin_counts, decades
from pytest_trt.core.records import Record
from pytest_trt.core.tolerance import Tolerance


_kernel = kernel.load()      # the C kernel module, or None: the numpy path (see comparison/kernel.py)

CHUNK = 1 << 18                 # float32 elements per chunk at most: 1 MiB buffers (fewer for wider dtypes);
                                # large, so that threads seldom wait for each other's GIL hand-over


CHUNK_MEMORY = 14 << 20         # all threads' chunk buffers together (7 per thread) stay under this

PARALLEL_MIN = 1 << 21          # outputs at least this large are split across threads

MAX_THREADS = 4                 # 2 threads get 1 MiB buffers, 4 threads 512 KiB: peak extra memory < 16 MiB

FIRST = 5                       # failing indices a report lists (the first ones, in index order)

MARGIN = 1e-5                   # chunks this close to the bound are decided by the exact formula


class _Partial(Record):
    """Statistics of one run of chunks; ``merge`` combines runs. Peaks are (value, flat index).
    ``counts`` is the decade histogram (see ``stats.decades``) of elements ``hist_from`` onward, or None
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
        self.first = first_indices(self.first, other.first)
        self.nan_first = first_indices(self.nan_first, other.nan_first)
        self.inf_first = first_indices(self.inf_first, other.inf_first)

    def count(self, counts: np.ndarray, offset: int) -> None:
        """Add the histogram of the chunk at ``offset``; the first one starts the run's histogram."""
        if self.counts is None:
            self.counts, self.hist_from = counts.astype(np.int64), offset
        else:
            self.counts += counts


def first_indices(a: list[int], b) -> list[int]:
    """The first FIRST of two sorted runs of distinct indices."""
    if len(a) >= FIRST and (not len(b) or b[0] > a[-1]):
        return a
    return sorted([*a, *(int(i) for i in b)])[:FIRST]


# ------------------------------------------------------------------------------------- whole outputs

def floats(fa: np.ndarray, fb: np.ndarray, tol: Tolerance, work: np.dtype,
           detail: bool) -> tuple[_Partial, list[tuple[tuple[int, int], _Partial]]]:
    """Scan two flat, equally long, non-empty float arrays in ``work``: the merged statistics, and each
    thread's range and run, from which ``decade_counts`` completes the histogram."""
    n = fb.size
    if work.char not in _KERNEL_DECADES:
        _kernel_tables(work)                      # the histogram tables (the kernel's too), before any thread
    if n >= PARALLEL_MIN and _threads() > 1:
        ranges = _split(n, _threads())
        results = list(_executor().map(lambda r: _scan(fa, fb, r[0], r[1], tol, work, detail), ranges))
    else:
        ranges, results = [(0, n)], [_scan(fa, fb, 0, n, tol, work, detail)]
    total = results[0]                            # merging leaves the runs' histograms alone
    for part in results[1:]:
        total.merge(part)
    return total, list(zip(ranges, results))


def decade_counts(fa, fb, runs: list[tuple[tuple[int, int], _Partial]], work: np.dtype) -> np.ndarray:
    """The |a-b| histogram of the whole output from the runs of ``floats``: each run counted from its first
    failure on (or not at all), so the chunks before that are counted here."""
    counts = np.zeros(decades(work).bins, np.int64)
    for (start, stop), part in runs:
        if part.counts is None:
            part.count(_histogram(fa, fb, start, stop, work), start)
        elif part.hist_from > start:              # chunks that passed before the run's first failure
            part.counts += _histogram(fa, fb, start, part.hist_from, work)
        counts += part.counts
    return counts


def exact(fa: np.ndarray, fb: np.ndarray) -> tuple[int, list[int], tuple[float, int]]:
    """Integers and bools, flat: (mismatches, the first FIRST failing flat indices, (greatest |a-b|, its index))."""
    mismatches, first = 0, []
    worst = (-1.0, -1)
    for s in range(0, fb.size, CHUNK):
        ne = fa[s:s + CHUNK] != fb[s:s + CHUNK]
        count = int(np.count_nonzero(ne))
        if count:
            idx = np.flatnonzero(ne)
            first = first_indices(first, s + idx[:FIRST])
            diffs = np.abs(fa[s:s + CHUNK][idx].astype(np.float64) - fb[s:s + CHUNK][idx].astype(np.float64))
            k = int(diffs.argmax())
            if diffs[k] > worst[0]:
                worst = (float(diffs[k]), s + int(idx[k]))
            mismatches += count
    return mismatches, first, worst


# ------------------------------------------------------------------------------------- one run of chunks

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
                part.count(bin_counts(d, work), s)
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
                part.first = first_indices(part.first, s + (np.arange(min(k, FIRST)) if all_fail
                                                     else np.flatnonzero(f_buf[:k])[:FIRST]))
            if fails and counting and part.counts is None:
                part.count(bin_counts(d, work), s)
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
        part.first = first_indices(part.first, [offset + i for i in first])
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
    part.nan_first = first_indices(part.nan_first, offset + failing[0])
    part.inf_first = first_indices(part.inf_first, offset + failing[1])
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
    part.first = first_indices(part.first, offset + np.sort(np.concatenate(failing))[:FIRST])
    if counting and (detail or part.counts is not None or part.failures > before):
        with np.errstate(invalid="ignore", over="ignore"):
            part.count(bin_counts(np.abs(A - B), work), offset)


# ------------------------------------------------------------------------------------- histogram

_KERNEL_DECADES: set = set()   # dtype chars whose tables the loaded kernel holds


def _kernel_tables(work: np.dtype) -> None:
    """Build the decade tables for ``work`` and hand them to the kernel, once (also when the numpy path
    built them first, as in a process that switched paths)."""
    tables = decades(work)
    if _kernel is not None and work.char not in _KERNEL_DECADES:
        _kernel.set_decades(work.char, tables.lo.astype(np.uint32).tobytes(), tables.split.tobytes(), tables.bins)
        _KERNEL_DECADES.add(work.char)


def _histogram(fa, fb, start: int, stop: int, work: np.dtype) -> np.ndarray:
    """Histogram counts of [start, stop) alone: for chunks that passed before an output's first failure."""
    counts = np.zeros(decades(work).bins, np.int64)
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
            counts += bin_counts(np.abs(d[:e - s], out=d[:e - s]), work)
    return counts


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
