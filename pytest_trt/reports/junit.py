"""Per-test JUnit XML properties (``record_property`` style) from a check's row, for CI dashboards to chart."""
from __future__ import annotations

from pytest_trt.backends.registry import short_reason
from pytest_trt.comparison.report import plain  # loads no numpy
from pytest_trt.reports.census import census_text
from pytest_trt.reports.rows import CheckRecord


def junit_properties(record: CheckRecord) -> list[tuple[str, object]]:
    """Per test properties for JUnit XML (``record_property`` style) that CI dashboards can chart."""
    props: list[tuple[str, object]] = [("trt_precision", record.precision), ("trt_backend", record.backend),
                                       ("trt_golden", record.golden)]
    worst = record.worst
    if worst is not None:
        props += [("trt_worst_output", worst.output), ("trt_comparison", worst.comparison),
                  ("trt_max_abs", plain(worst.max_abs)), ("trt_max_rel", plain(worst.max_rel)),
                  ("trt_budget", plain(worst.budget)), ("trt_atol", plain(worst.atol)), ("trt_rtol", plain(worst.rtol))]
    if record.cache is not None:
        props += [("trt_engine_cache", "hit" if record.cache == "loaded" else "miss"),
                  ("trt_build_seconds", round(record.build_seconds, 3))]
    if record.engine_skipped:  # without its install hint: the summary gives the whole reason once
        props.append(("trt_engine_skipped", short_reason(record.engine_skipped)))
    if record.drift:
        props.append(("trt_drift", "; ".join(record.drift)))
    if record.census:
        props.append(("trt_layers", census_text(record.census)))
        props += [(f"trt_layers.{precision}", count) for precision, count in (record.census.get("compute") or {}).items()]
    if record.precision_shortfall:
        props.append(("trt_precision_shortfall", record.precision_shortfall))
    if record.first_diverging:
        props.append(("trt_first_diverging_node", record.first_diverging))
    for row in record.outputs:
        if row.budget is not None:
            key = f"trt[{row.comparison}][{row.output}]"
            props += [(f"{key}.max_abs", plain(row.max_abs)), (f"{key}.max_rel", plain(row.max_rel)),
                      (f"{key}.budget", plain(row.budget))]
    return props
