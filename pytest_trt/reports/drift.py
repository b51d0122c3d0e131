"""Drift: an engine's error against the reference, now and when its golden was recorded.

An engine golden's sidecar records each output's error against the reference under ``errors_vs_reference``
(made by ``errors_by_output``; written by ``core/check.py``, read back by ``goldens/policy.py``); a later check
whose error grew more than ``DRIFT_FACTOR`` times that, and is not mere noise near zero (``DRIFT_FLOOR``),
has drifted, and ``drift_sentences`` says so. Loads no numpy.
"""
from __future__ import annotations

from collections.abc import Mapping

from pytest_trt.reports.defaults import DRIFT_FACTOR
from pytest_trt.comparison.report import ComparisonReport, budget_text, short  # loads no numpy

DRIFT_FLOOR = 0.05     # errors below this share of the tolerance never count as drift (noise around zero)


def errors_by_output(report: ComparisonReport | None) -> dict[str, dict]:
    """What a golden sidecar records about the error at the time it was written (the drift baseline)."""
    if report is None:
        return {}
    return {o.name: {"max_abs": o.max_abs.value if o.max_abs else 0.0, "budget": float(o.budget)}
            for o in report.outputs if not o.exact and o.values_compared}


def drift_sentences(baseline: Mapping | None, report: ComparisonReport | None, factor: float = DRIFT_FACTOR) -> list[str]:
    """Outputs whose error against the reference grew more than ``factor``x since the golden was recorded."""
    if not baseline or report is None:
        return []
    found = []
    for name, now in errors_by_output(report).items():
        before = baseline.get(name)
        if not isinstance(before, Mapping) or not isinstance(before.get("max_abs"), (int, float)):
            continue
        b_abs, n_abs = float(before["max_abs"]), now["max_abs"]
        if now["budget"] < DRIFT_FLOOR or n_abs <= factor * b_abs:
            continue
        growth = f"{n_abs / b_abs:.1f}x" if b_abs > 0 else "from exact"
        found.append(f"output {name!r} error against the reference grew {growth} since its golden was recorded "
                     f"(max abs {short(b_abs)} -> {short(n_abs)}; {budget_text(before.get('budget'), '?')} -> "
                     f"{budget_text(now['budget'])} of its tolerance)")
    return found
