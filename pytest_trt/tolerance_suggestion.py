"""``--trt-suggest-tolerances``: the tightest tolerances each test needs, as marker arguments to paste.

For every (precision, output) a check compared, the suggestion keeps the rtol in force and proposes
``atol = SUGGEST_MARGIN x`` the smallest atol that passed every comparison at that rtol, rounded up to two
significant digits. Entries are per precision and per output, the most specific level of ``tolerances=``,
so pasting them wins over any other setting.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from .check_record import SUGGEST_MARGIN, CheckRecord
from .tolerance import PRECISIONS


def round_up(x: float, digits: int = 2) -> float:
    """The smallest number with ``digits`` significant digits that is >= ``x``."""
    if x <= 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - digits + 1)
    value = float(f"{math.ceil(x / step - 1e-9) * step:.{digits - 1}e}")
    return value if value >= x else float(f"{value + step:.{digits - 1}e}")


def suggest(records: Iterable[CheckRecord], margin: float = SUGGEST_MARGIN) -> tuple[dict, list[str]]:
    """({precision: {output: {"atol", "rtol"}}}, reasons a tolerance cannot fix) over one test's checks."""
    needed: dict[tuple[str, str], tuple[float, float]] = {}
    unfixable: list[str] = []
    for record in records:
        for row in record.outputs:
            if not row.passed and not row.tolerance_only:
                why = "exact (integer/bool) output differs" if row.exact else "not a tolerance problem"
                unfixable.append(f"[{record.precision}] {row.comparison}: output {row.output!r}: {why}")
                continue
            if row.exact or row.budget is None or row.min_atol is None or row.rtol is None:
                continue
            key = (row.precision, row.output)
            atol, rtol = needed.get(key, (0.0, row.rtol))
            needed[key] = (max(atol, row.min_atol), rtol)
    out: dict[str, dict] = {}
    for (precision, output), (atol, rtol) in sorted(needed.items(), key=lambda kv: (_order(kv[0][0]), kv[0][1])):
        out.setdefault(precision, {})[output] = {"atol": round_up(atol * margin), "rtol": rtol}
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
    """The terminal section: a header, then per test the marker argument and what no tolerance can fix."""
    by_test: dict[str, list[CheckRecord]] = {}
    for record in records:
        by_test.setdefault(record.test, []).append(record)
    lines = [f"tightest passing atol per precision and output (x{margin:g}, rounded up; rtol kept); merge into each "
             "test's tolerances= (precisions that did not run here are not covered):"]
    for test in sorted(by_test):
        suggestion, unfixable = suggest(by_test[test], margin)
        lines.append(test)
        if suggestion:
            lines.append("    " + marker_text(suggestion))
        for reason in unfixable:
            lines.append(f"    no tolerance fixes {reason}")
    return lines
