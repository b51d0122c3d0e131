"""``--trt-suggest-tolerances``: the tightest tolerances that hold, as marker arguments to paste.

For every (precision, output) a check compared, the suggestion keeps the rtol in force and proposes
``atol = max(SUGGEST_MARGIN x the smallest atol that passed every comparison at that rtol, floor)``, rounded
up to two significant digits. The floor keeps an error measured as zero (a reference against the golden it
wrote on this machine, an engine that happens to match) from becoming ``atol=0.0``, which a rerun on another
CPU, GPU or library version fails::

    floor = FLOOR_ULPS x eps x max|expected|

``eps`` is the machine epsilon of the coarser of the precision's arithmetic (fp32 2^-23, tf32 and fp16 2^-10,
bf16 and int8 2^-7, fp8 2^-3) and the output's dtype; ``max|expected|`` is the output's largest finite
magnitude (1 when it is all zeros). ``eps x max|expected|`` is one to two ULPs at that magnitude, so the floor
is two to four: fp32 outputs of magnitude 1 get at least 2.4e-07, fp16 ones 2.0e-03, fp32 outputs of
magnitude 100 2.4e-05.

Tests that share one marker (parametrized tests, a class's or module's marker) get one suggestion, the
loosest over them (largest atol and rtol), since it is pasted once. Entries are per precision and per
output, the most specific level of ``tolerances=``, so pasting them wins over any other setting.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from pytest_trt.reports.defaults import FLOOR_ULPS, SUGGEST_MARGIN
from pytest_trt.reports.rows import CheckRecord
from pytest_trt.core.dtypes import DTYPE_EPSILON
from pytest_trt.core.tolerance import PRECISIONS

PRECISION_EPSILON = {"fp32": 2.0 ** -23, "tf32": 2.0 ** -10, "fp16": 2.0 ** -10, "bf16": 2.0 ** -7,
                     "int8": 2.0 ** -7, "fp8": 2.0 ** -3}
def atol_floor(precision: str, dtype: str | None, magnitude: float | None) -> float:
    """The smallest atol suggested for an output (see the module docstring for the rule)."""
    eps = max(PRECISION_EPSILON.get(precision, PRECISION_EPSILON["fp32"]), DTYPE_EPSILON.get(dtype or "", 0.0))
    return FLOOR_ULPS * eps * (magnitude or 1.0)


def round_up(x: float, digits: int = 2) -> float:
    """The smallest number with ``digits`` significant digits that is >= ``x``."""
    if x <= 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    value = float(f"{math.ceil(x / step - 1e-9) * step:.{digits - 1}e}")
    return value if value >= x else float(f"{value + step:.{digits - 1}e}")


def suggest(records: Iterable[CheckRecord], margin: float = SUGGEST_MARGIN,
            name_tests: bool = False) -> tuple[dict, list[str]]:
    """({precision: {output: {"atol", "rtol"}}}, reasons a tolerance cannot fix) over the checks of one marker;
    ``name_tests``: each reason starts with its test's id (for a marker shared by several tests)."""
    needed: dict[tuple[str, str], tuple[float, float]] = {}
    unfixable: list[str] = []
    for record in records:
        for row in record.outputs:
            if not row.passed and not row.tolerance_only:
                why = "exact (integer/bool) output differs" if row.exact else "not a tolerance problem"
                unfixable.append(f"{record.test + ' ' if name_tests else ''}[{record.precision}] {row.comparison}: "
                                 f"output {row.output!r}: {why}")
                continue
            if row.exact or row.budget is None or row.min_atol is None or row.rtol is None:
                continue
            key = (row.precision, row.output)
            atol, rtol = needed.get(key, (0.0, 0.0))
            # the largest atol at the largest rtol passes every check: the bound grows with both
            needed[key] = (max(atol, row.min_atol * margin, atol_floor(row.precision, row.dtype, row.magnitude)),
                           max(rtol, row.rtol))
    out: dict[str, dict] = {}
    for (precision, output), (atol, rtol) in sorted(needed.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1])):
        out.setdefault(precision, {})[output] = {"atol": round_up(atol), "rtol": rtol}
    return out, unfixable


def _order(precision: str) -> int:
    return PRECISIONS.index(precision) if precision in PRECISIONS else len(PRECISIONS)


def marker_text(suggestion: dict) -> str:
    """``tolerances={...}`` as Python source, ready to paste into ``@pytest.mark.trt_compare(...)``."""
    def section(outputs: dict) -> str:
        return "{" + ", ".join(f"{name!r}: {{'atol': {t['atol']!r}, 'rtol': {t['rtol']!r}}}"
                               for name, t in outputs.items()) + "}"
    return "tolerances={" + ", ".join(f"{p!r}: {section(o)}" for p, o in suggestion.items()) + "}"


def suggestion_lines(records: Iterable[CheckRecord], margin: float = SUGGEST_MARGIN) -> list[str]:
    """The terminal section: a header, then per marker the argument to paste and what no tolerance can fix."""
    by_marker: dict[str, list[CheckRecord]] = {}
    for record in records:
        by_marker.setdefault(record.marker or record.test, []).append(record)
    lines = [f"tightest passing atol per precision and output (x{margin:g}, at least {FLOOR_ULPS:g} eps x "
             "max|expected| of its dtype, rounded up; rtol kept); merge into each marker's tolerances= "
             "(precisions that did not run here are not covered):"]
    for marker in sorted(by_marker):
        group = by_marker[marker]
        tests = sorted({r.test for r in group})
        suggestion, unfixable = suggest(group, margin, name_tests=len(tests) > 1)
        lines.append(f"{marker} (one marker, {len(tests)} tests: the loosest over them)" if len(tests) > 1 else tests[0])
        if suggestion:
            lines.append("    " + marker_text(suggestion))
        for reason in unfixable:
            lines.append(f"    no tolerance fixes {reason}")
    return lines
