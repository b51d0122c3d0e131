"""The |a-b| histogram by decade, and the optional whole-output statistics.

The histogram is exact at powers of ten: tables built here (``decades``) map each |a-b| to its decade
in one lookup of its bit pattern; the numpy path counts with them (``bin_counts``) and the C kernel
is handed the same tables (``scan._kernel_tables``), so both count alike. The statistics are the
checks a tolerance may add to the element-wise one: cosine similarity and limits on the max, mean,
median or a percentile of |a-b| (``output_statistics``).
"""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from pytest_trt.core.records import Record

if TYPE_CHECKING:
    from pytest_trt.comparison.report import OutputReport
    from pytest_trt.core.tolerance import Tolerance


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


def decades(work: np.dtype) -> _Decades:
    """The tables for ``work`` (float32 or float64), built once (``scan._kernel_tables`` hands them to the kernel)."""
    tables = _DECADES.get(work.char)
    if tables is None:
        tables = _build_decades(work)
    return tables


# The bit patterns of _decade_floor(k, float32) for k = -45 .. 38 (the smallest float32 >= 10**k), as computed
# by _decade_floor (tests/comparison/test_compare.py checks they agree): float32 is what nearly every check compares in,
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


def bin_counts(d: np.ndarray, work: np.dtype) -> np.ndarray:
    """Histogram counts of |a-b| (``d``, contiguous, in ``work``) by the bins of ``decades``."""
    t = decades(work)
    u = d.view(t.uint) & t.uint.type(np.iinfo(t.uint).max >> 1)
    exponent = u >> t.uint.type(t.nmant)
    row = exponent.astype(np.intp)
    row += t.nmant
    sub = exponent == 0
    if sub.any():                                                     # zero and subnormals: the bit length
        row[sub] = np.frexp(u[sub].astype(np.float64))[1]
    return np.bincount(t.lo[row] + (u >= t.split[row]), minlength=t.bins)


def decade_bins(counts: np.ndarray, work: np.dtype) -> list[tuple[str, int]]:
    """The report's histogram: ("0", equal elements) then ("1e<k>", count) per non-empty decade."""
    kmin = decades(work).kmin
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


# ------------------------------------------------------------------------------------- statistics

def output_statistics(report: OutputReport, fa, fb, work, tol: Tolerance) -> None:
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
