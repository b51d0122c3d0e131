"""Pure parts of the reports: budget rows, drift, JUnit properties, suggestions, heatmap grid, progress lines."""
import math

import numpy as np
import pytest

from pytest_trt import compare
from pytest_trt.backends.tensorrt.progress import BuildProgress, install
from pytest_trt.reports.drift import drift_sentences, errors_by_output
from pytest_trt.reports.junit import junit_properties
from pytest_trt.reports.rows import CheckRecord, close_to_tolerance, output_rows
from pytest_trt.reports.artifacts import heatmap_grid
from pytest_trt.reports.suggestions import marker_text, round_up, suggest


def _report(shift, atol=1e-3, rtol=0.0, detail=True):
    ref = {"y": np.linspace(-1, 1, 101, dtype=np.float32), "label": np.arange(4)}
    act = {"y": ref["y"] + np.float32(shift), "label": np.arange(4)}
    return compare(act, ref, atol=atol, rtol=rtol, detail=detail)


def test_rows_carry_budget_and_exact_outputs():
    rows = output_rows(_report(5e-4), "engine vs reference", "fp16")
    y, label = rows
    assert y.output == "y" and y.precision == "fp16" and y.passed and not y.exact
    assert y.budget == pytest.approx(0.5, rel=1e-3) and y.max_abs == pytest.approx(5e-4, rel=1e-3)
    assert y.atol == 1e-3 and y.rtol == 0.0
    assert label.exact and label.budget == 0.0 and label.atol is None
    assert not close_to_tolerance(rows) and close_to_tolerance(rows, share=0.4)
    failing = output_rows(_report(2e-3), "x", "fp32")[0]
    assert not failing.passed and failing.tolerance_only and failing.budget == pytest.approx(2, rel=1e-3)
    assert not close_to_tolerance([failing])  # failed is not "close"


def test_nan_and_integer_failures_are_not_tolerance_problems():
    nan = compare(np.array([np.nan, 1.0], np.float32), np.array([0.0, 1.0], np.float32))
    assert not output_rows(nan, "c", "fp32")[0].tolerance_only
    ints = compare(np.array([1, 2]), np.array([1, 3]))
    row = output_rows(ints, "c", "fp32")[0]
    assert row.exact and not row.tolerance_only and math.isinf(row.budget)


@pytest.mark.parametrize("before, now, factor, drifted", [
    (1e-4, 1.9e-4, 2.0, False),     # grew 1.9x
    (1e-4, 2.1e-4, 2.0, True),      # grew 2.1x
    (1e-4, 2.1e-4, 3.0, False),     # a looser factor
    (0.0, 4e-5, 2.0, False),        # from exact, but 4% of the tolerance: below the floor
    (0.0, 6e-5, 2.0, True),         # from exact, 6%
])
def test_drift_rule(before, now, factor, drifted):
    baseline = {"y": {"max_abs": before, "budget": before / 1e-3}}
    found = drift_sentences(baseline, _report(now), factor)
    assert bool(found) == drifted, found
    if found and before:
        assert found[0].startswith(f"output 'y' error against the reference grew {now / before:.1f}x")
    if found and not before:
        assert "grew from exact" in found[0]


def test_drift_ignores_missing_or_malformed_baselines():
    assert drift_sentences(None, _report(1e-3)) == []
    assert drift_sentences({"y": "garbage"}, _report(1e-3)) == []
    assert drift_sentences({"other": {"max_abs": 1e-9}}, _report(1e-3)) == []


def test_errors_by_output_is_the_recorded_baseline():
    errors = errors_by_output(_report(2.5e-4))
    assert set(errors) == {"y"} and errors["y"]["max_abs"] == pytest.approx(2.5e-4, rel=1e-3)


def test_record_json_roundtrip_and_junit():
    rows = output_rows(_report(5e-4), "engine vs reference", "fp32")
    record = CheckRecord("t.py::test_x", "fp32", True, "tensorrt 10.0", None, "unchanged", "loaded", 0.0, rows)
    again = CheckRecord.from_json(record.to_json())
    assert again == record and again.worst.output == "y"
    props = dict(junit_properties(record))
    assert props["trt_engine_cache"] == "hit" and props["trt_worst_output"] == "y"
    assert float(props["trt_budget"]) == pytest.approx(0.5, rel=1e-3)
    assert props["trt[engine vs reference][label].budget"] == "0"  # exact outputs: plain 0, not 0.0
    built = CheckRecord("t", "fp16", True, "b", None, "-", "built", 12.25, [])
    assert dict(junit_properties(built))["trt_engine_cache"] == "miss"
    assert dict(junit_properties(built))["trt_build_seconds"] == 12.25


@pytest.mark.parametrize("x, up", [(1.01e-5, 1.1e-5), (1.1e-5, 1.1e-5), (2.345e-3, 2.4e-3), (9.91, 10.0),
                                   (0.0, 0.0), (3e-7, 3e-7)])
def test_round_up_two_digits(x, up):
    assert round_up(x) == up and round_up(x) >= x


def test_suggestion_per_precision_and_output_and_what_it_cannot_fix():
    rows = output_rows(_report(2e-3, atol=1e-6, rtol=1e-6), "reference vs golden", "fp32")
    record = CheckRecord("t", "fp16", False, "none", "skipped", "failed", None, 0.0, rows)
    suggestion, unfixable = suggest([record])
    atol = suggestion["fp32"]["y"]["atol"]
    assert suggestion["fp32"]["y"]["rtol"] == 1e-6 and rows[0].min_atol * 1.5 <= atol <= rows[0].min_atol * 1.6
    assert unfixable == []
    assert marker_text(suggestion) == f"tolerances={{'fp32': {{'y': {{'atol': {atol!r}, 'rtol': 1e-06}}}}}}"
    # the suggestion passes; a third of it does not
    act, ref = np.linspace(-1, 1, 101, dtype=np.float32) + np.float32(2e-3), np.linspace(-1, 1, 101, dtype=np.float32)
    assert compare(act, ref, atol=atol, rtol=1e-6).passed
    assert not compare(act, ref, atol=atol / 3, rtol=1e-6).passed
    ints = output_rows(compare({"i": np.array([1])}, {"i": np.array([2])}), "engine vs reference", "fp16")
    _, unfixable = suggest([CheckRecord("t", "fp16", False, "x", None, "-", None, 0.0, ints)])
    assert unfixable == ["[fp16] engine vs reference: output 'i': exact (integer/bool) output differs"]


def test_heatmap_grid_keeps_spikes_and_bounds_size():
    def grid(d):
        return heatmap_grid(np.asarray(d, np.float64), np.zeros(np.shape(d)))

    d = np.zeros((1000, 3000))
    d[517, 2999] = 7.0
    g = grid(d)
    assert g.shape[0] <= 256 and g.shape[1] <= 256 and np.nanmax(g) == 7.0
    assert np.argwhere(g == 7.0).tolist() == [[517 // 4, 2999 // 12]]
    ten = grid(np.arange(10.0))                                   # 1-d wraps near-square; the short row is padded
    assert ten.shape == (3, 4) and np.isnan(ten[2, 2:]).all()
    assert ten[:2].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and ten[2, :2].tolist() == [8, 9]
    assert grid(np.float64(3)).tolist() == [[3.0]]
    assert grid(np.ones((2, 3, 5))).shape == (6, 5)              # leading dims fold into rows
    assert np.isnan(grid(np.full((600, 600), np.inf))).all()     # non-finite blocks are blank, no warning
    line = np.zeros(3_000_001)
    line[2_999_999] = 5.0                                         # a long 1-d output, in pieces
    g = grid(line)
    assert g.shape[0] <= 256 and g.shape[1] <= 256 and np.nanmax(g) == 5.0
    assert np.nansum(g == 5.0) == 1


def test_build_progress_lines_are_throttled():
    now = [0.0]
    lines = []
    previous = install(lines.append)
    try:
        progress = BuildProgress("engine for m.onnx", clock=lambda: now[0])
        progress.started()
        for t, step in ((0.5, 1), (2.5, 2), (3.0, 3), (5.0, 4)):
            now[0] = t
            progress.phase("Building", step, 4)
        now[0] = 6.25
        assert progress.finished() == 6.25
    finally:
        install(previous)
    assert lines == ["pytest-trt: building engine for m.onnx ...",
                     "pytest-trt: building engine for m.onnx: Building (step 2/4), 2 s so far",
                     "pytest-trt: building engine for m.onnx: Building (step 4/4), 5 s so far",
                     "pytest-trt: built engine for m.onnx in 6.2 s"]
