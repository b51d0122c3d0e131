"""Records of a comparison and their messages, and the numbers the plugin reports, as text.

``Extreme``, ``OutputReport`` and ``ComparisonReport`` are what ``compare`` returns; ``format_output``
and ``format_report`` write them for people (the assertion message and the report files). The number
formatters below serve the session summary, JUnit properties, drift sentences and the self-check too.
This module imports no numpy, so those can format without loading it.
"""
from __future__ import annotations

import math

from pytest_trt.core.records import Record
from pytest_trt.core.tolerance import CONVENTIONS, Tolerance


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
        self.failing_indices = failing_indices  # the first scan.FIRST failing elements, of any kind, in index order
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


# ------------------------------------------------------------------------------------- numbers as text
# One home for numbers as text. They differ on purpose, by who reads them, and each keeps its form:
#   number       a value in a message (failure reports): 6 significant digits, exponent form from 1e6 on
#   short        a value in a one-line sentence (drift, the self-check, a percentage): 3 significant digits
#   column       a value in the summary table: always d.dde±xx, so that the columns line up
#   plain        a JUnit property value, read by dashboards: %g, non-floats as they are
#   budget_text  the share of its tolerance a check used, in whole percent (the summary table, drift)
#   share_text   the same share in a failure message: digits enough that a failing share never reads 100%
# Not here: settings echoed as given (atol, rtol, limits: ``:g``), durations (``.1f`` s) and the statistic
# checks' own sentences (stats.py), which keep the forms their messages have always had.

def number(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.6g}" if abs(x) < 1e6 or not math.isfinite(x) else f"{x:.4e}"


def short(x: float) -> str:
    return f"{x:.3g}"


def column(x: float | None) -> str:
    if x is None:
        return "-"
    if x == 0:
        return "0"
    return f"{x:.2e}"


def plain(x):
    """Numbers as JUnit text: plain floats, 'inf' spelled out, '-' for none."""
    if x is None:
        return "-"
    return f"{x:.6g}" if isinstance(x, float) else x


def size_text(size: float) -> str:
    """Bytes in binary units: ``512 B``, ``41.2 KiB``, ``1.5 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def budget_text(budget, missing: str = "-") -> str:
    """``missing`` for anything but a number (a golden's sidecar may lack it or hold something else)."""
    if not isinstance(budget, (int, float)):
        return missing
    if math.isinf(budget):
        return "inf"
    return f"{budget * 100:.0f}%"


def share_text(share: float) -> str:
    """A share of the bound as a percentage; digits enough that a failing one never reads 100%."""
    if math.isinf(share) or math.isnan(share):
        return str(share)
    if share >= 10:
        return f"{100 * share:.0f}%"
    digits = 4
    while share > 1 and float(f"{100 * share:.{digits}g}") <= 100 and digits < 17:
        digits += 1
    return f"{100 * share:.{digits}g}%"


# ------------------------------------------------------------------------------------- messages

def _index(index: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, index)) + ")" if len(index) != 1 else f"({index[0]},)"


def _indices(indices: tuple[tuple[int, ...], ...], count: int) -> str:
    """The listed indices, and "..." when there are more than listed."""
    return ", ".join(map(_index, indices)) + (", ..." if count > len(indices) else "")


def _at(e: Extreme) -> str:
    """actual, expected and the bound at an extreme, with the share of the bound used."""
    bound = "" if e.allowed is None else f"; allowed {number(e.allowed)}" + (
        f", {share_text(e.share)} of it" if e.share is not None else "")
    return f"(actual {number(e.actual)}, expected {number(e.expected)}{bound})"


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
    lines.append(f"  mismatched elements: {r.mismatches} / {r.size} ({short(pct)}%)")
    nonfinite = r.nan_mismatches + r.inf_mismatches
    if nonfinite:
        lines.append("  of which " + ", ".join(
            f"{kind} mismatches: {count}" + (f" at {_indices(indices, count)}" if indices else "")
            for kind, count, indices in (("NaN", r.nan_mismatches, r.nan_indices),
                                         ("Inf", r.inf_mismatches, r.inf_indices))))
    if r.worst is not None and not r.exact:
        e = r.worst
        lines.append(f"  largest share of its bound: {share_text(e.share)} at index {_index(e.index)} (actual "
                     f"{number(e.actual)}, expected {number(e.expected)}, |a-b| {number(e.value)}, "
                     f"allowed {number(e.allowed)})")
    if r.max_abs is not None:
        e = r.max_abs
        lines.append(f"  greatest absolute difference: {number(e.value)} at index {_index(e.index)} {_at(e)}")
    if r.max_rel is not None:
        e = r.max_rel
        lines.append(f"  greatest relative difference: {number(e.value)} at index {_index(e.index)} {_at(e)}")
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
                rtol_text = ("no rtol (an expected value is 0)" if math.isinf(r.min_rtol)
                             else f"rtol >= {number(r.min_rtol)}")
                lines.append(f"  {'the other elements ' if nonfinite else ''}would pass with atol >= "
                             f"{number(r.min_atol)} (at rtol {t.rtol:g}) or {rtol_text} (at atol {t.atol:g})")
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
