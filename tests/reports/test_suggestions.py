"""--trt-suggest-tolerances suggestions that hold: never atol=0.0, one per marker, and a summary that agrees
with pytest's verdicts.

Real pytest runs (pytester), real ONNX models (y = x * factor; identity), real onnxruntime and goldens. The
engine side is skipped on this CPU machine, so the reference-vs-golden comparison is what is suggested for;
re-saving the model with another factor stands in for a changed numeric stack.
"""
import re
import textwrap

import numpy as np
import pytest

from models import identity_model, scale_model
from pytest_trt.core.dtypes import coarser_float
from pytest_trt.reports.suggestions import FLOOR_ULPS, atol_floor, round_up

from shared import INI


def _section(stdout: str) -> list[str]:
    """The lines of the suggestion section after its header."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "pytest-trt tolerance suggestions" in line)
    return [line for line in lines[start + 2:] if line and not line.startswith("=")]


def _atols(text: str) -> list[float]:
    return [float(a) for a in re.findall(r"'atol': ([0-9.e+-]+)", text)]


# ----------------------------------------------------------------------------------------- the floor

@pytest.mark.parametrize("precision, dtype, magnitude, floor", [
    ("fp32", "float32", 1.0, 2 * 2.0 ** -23),
    ("fp32", "float32", 100.0, 200 * 2.0 ** -23),     # scales with the output's largest magnitude
    ("fp32", "float32", 0.0, 2 * 2.0 ** -23),         # all zeros: magnitude 1
    ("fp16", "float32", 1.0, 2 * 2.0 ** -10),         # the precision's arithmetic
    ("fp32", "float16", 3.0, 6 * 2.0 ** -10),         # a float16 output limits even fp32 arithmetic
    ("bf16", "float16", 2.0, 4 * 2.0 ** -7),          # the coarser of the two
])
def test_floor_per_dtype_and_magnitude(precision, dtype, magnitude, floor):
    assert FLOOR_ULPS == 2.0
    assert atol_floor(precision, dtype, magnitude) == floor
    assert coarser_float("float32", "float16") == "float16" and coarser_float("int64", None) is None


@pytest.mark.parametrize("dtype, eps", [("float32", 2.0 ** -23), ("float16", 2.0 ** -10)])
def test_error_of_zero_suggests_the_floor_not_zero(pytester, dtype, eps):
    """Right after --update-golden the reference matches its golden bit for bit: min atol 0. The suggestion is
    FLOOR_ULPS x eps x max|expected| (never atol=0.0, which a rerun on another machine fails), and it passes."""
    if dtype == "float32":
        scale_model(pytester.path / "m.onnx", dims=(2, 4), factor=30.0)
    else:
        identity_model(pytester.path / "m.onnx", "float16", dims=(2, 4))
    pytester.makeini(INI)
    test = textwrap.dedent("""
        import pytest
        @pytest.mark.trt_compare(model="m.onnx", rtol=0.0{paste})
        def test_x(trt_compare):
            trt_compare()
    """)
    pytester.makepyfile(test_a=test.format(paste=""))
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    result = pytester.runpytest("--trt-suggest-tolerances")
    result.assert_outcomes(passed=1)
    section = _section(result.stdout.str())
    assert section[0] == "test_a.py::test_x", section
    golden = np.load(next((pytester.path / "golden").rglob("reference.npz")))["y"].astype(np.float64)
    expected = round_up(FLOOR_ULPS * eps * np.abs(golden).max())
    assert _atols(section[1]) == [expected] and expected > 0, section
    pytester.makepyfile(test_a=test.format(paste=", " + section[1].strip()))
    pytester.runpytest().assert_outcomes(passed=1)


# ------------------------------------------------------------------------------ one suggestion per marker

SHARED = textwrap.dedent("""
    import numpy as np
    import pytest

    ONES = np.ones((2, 4), np.float32)

    @pytest.mark.trt_compare(model="scale.onnx", atol=1e-6, rtol=0.0{paste})
    @pytest.mark.parametrize("k", [1.0, 2.0, 4.0])
    def test_scale(trt_compare, k):
        trt_compare(inputs={{"x": ONES * k}})

    @pytest.mark.trt_compare(model="scale.onnx", atol=1e-6, rtol=0.0)
    class TestShared:
        def test_one(self, trt_compare):
            trt_compare(inputs={{"x": ONES}})

        def test_three(self, trt_compare):
            trt_compare(inputs={{"x": ONES * 3}})

    OWN = pytest.mark.trt_compare(model="scale.onnx", atol=1e-6, rtol=0.0)

    @pytest.mark.parametrize("k", [pytest.param(1.0, marks=OWN, id="one"), pytest.param(5.0, marks=OWN, id="five")])
    def test_own(trt_compare, k):
        trt_compare(inputs={{"x": ONES * k}})
""")


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_one_suggestion_per_marker_and_a_summary_that_agrees_with_pytest(pytester, workers):
    scale_model(pytester.path / "scale.onnx", dims=(2, 4), factor=2.0)
    pytester.makeini(INI)
    pytester.makepyfile(test_a=SHARED.format(paste=""))
    pytester.runpytest("--update-golden").assert_outcomes(passed=7)
    scale_model(pytester.path / "scale.onnx", dims=(2, 4), factor=2.001)  # error: 1e-3 * x, over atol 1e-6
    pytester.runpytest().assert_outcomes(failed=7)

    result = pytester.runpytest("--trt-suggest-tolerances", *workers)
    result.assert_outcomes(passed=7)
    out = result.stdout.str()
    # pytest passed all seven: the pytest-trt summary counts none as failed and marks each row "would fail"
    assert ("checks: 7, 0 passed, 0 failed, 7 would fail on tolerances alone (passed under "
            "--trt-suggest-tolerances)") in out, out
    rows = [line for line in out.splitlines() if line.startswith("  test_a.py::")]
    assert len(rows) == 7 and all(line.endswith("would fail") for line in rows), rows
    assert "FAILED" not in out[out.index("= pytest-trt ="):]
    assert all(line.count("would fail") == 2 for line in rows), rows  # the golden column and the status
    assert re.search(r"goldens in .*: 7 would fail on tolerances alone \(passed under --trt-suggest-tolerances\)",
                     out), out
    summary = out[out.index("= pytest-trt ="):out.index("tolerance suggestions")]
    assert not re.search(r"\b[1-9][0-9]* failed|  failed: ", summary), summary

    section = _section(out)
    heads = [line for line in section if not line.startswith(" ")]
    assert heads == ["test_a.py::TestShared (one marker, 2 tests: the loosest over them)",
                     "test_a.py::test_own[five]", "test_a.py::test_own[one]",
                     "test_a.py::test_scale (one marker, 3 tests: the loosest over them)"], section
    by_head = dict(zip(heads, (line.strip() for line in section if line.startswith(" "))))
    shared, five, one, scale = (_atols(by_head[h])[0] for h in heads)
    assert 4.5e-3 < scale <= 6.1e-3 and 4.5e-3 < five <= 7.6e-3   # the largest error (x = 4 and 5) x 1.5
    assert 1.4e-3 < one < 1.6e-3 and 4.4e-3 < shared < 4.6e-3      # x = 1; the class's loosest, x = 3

    # pasted once into the shared marker, it holds for every test that shares it
    pytester.makepyfile(test_a=SHARED.format(paste=", " + by_head[heads[3]]))
    result = pytester.runpytest("-k", "test_scale")
    result.assert_outcomes(passed=3)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_scale_of_the_floor_ignores_inf_and_nan_and_reads_narrow_floats(dtype):
    import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)

    from pytest_trt import compare
    from pytest_trt.reports.rows import _add_scale, output_rows

    expected = np.array([-3.5, 1.0, np.inf, np.nan], dtype)
    report = compare({"y": expected.copy()}, {"y": expected}, detail=True)
    rows = output_rows(report, "engine vs reference", "fp32")
    _add_scale(rows, report, {"y": expected})
    assert (rows[0].magnitude, rows[0].dtype) == (3.5, dtype)


def test_a_check_failed_for_drift_under_strict_drift_is_not_shown_as_tolerated():
    """--trt-strict-drift fails a drifted check even in suggest mode, so its row must not read 'would fail'."""
    from pytest_trt import compare
    from pytest_trt.core.check import CheckResult
    from pytest_trt.reports.rows import record_check

    reference = {"y": np.ones(4, np.float32)}
    result = CheckResult("t", "fp32", {}, reference)
    result.engine_vs_reference = compare({"y": reference["y"] + np.float32(1e-3)}, reference, atol=1e-4, rtol=0.0)
    result.add_comparison_problem(result.engine_vs_reference)      # values over their tolerance, nothing else
    result.engine_baseline = {"y": {"max_abs": 1e-5, "budget": 0.1}}  # the error grew 100x since the golden
    assert result.only_tolerance_failed
    assert record_check(result, "t", [], suggest=True).tolerated
    assert not record_check(result, "t", [], suggest=True, strict_drift=True).tolerated
    assert not record_check(result, "t", []).tolerated
