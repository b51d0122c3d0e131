import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pytest_trt.comparison.compare as cmp
from pytest_trt.comparison import scan, stats
from pytest_trt.comparison.report import format_report
from comparator_paths import comparator_path  # noqa: F401  (autouse: every test on both paths)
from pytest_trt import assert_close, compare



def test_pass_and_report_as_data():
    a = np.array([1.0, 2.0, 3.0], np.float32)
    report = compare(a, a + np.float32(1e-6), atol=1e-5, rtol=0)
    assert report.passed
    out = report["output"]
    assert out.mismatches == 0 and out.max_abs.value == pytest.approx(1e-6, rel=0.5)
    assert 0 < out.budget < 1


def test_failure_message_names_everything():
    a = np.zeros((2, 3), np.float32)
    b = a.copy()
    b[1, 2] = 1.0
    with pytest.raises(AssertionError) as info:
        assert_close({"logits": b}, {"logits": a}, atol=1e-3, rtol=1e-3)
    text = str(info.value)
    assert "1 of 1 outputs differ" in text
    assert "mismatched elements: 1 / 6 (16.7%)" in text
    assert "greatest absolute difference: 1 at index (1, 2) (actual 1, expected 0; allowed 0.001, 100000% of it)" in text
    assert "largest share of its bound: 100000% at index (1, 2) (actual 1, expected 0, |a-b| 1, allowed 0.001)" in text
    assert "failing indices: (1, 2)" in text
    assert "convention allclose: |actual - expected| <= atol + rtol * |expected|" in text
    assert "would pass with atol >= 1 (at rtol 0.001)" in text
    assert "atol=0.001 (argument)" in text


@pytest.mark.parametrize("convention", ["allclose", "either"])
def test_element_exactly_at_bound_passes(convention):
    expected = np.array([2.0], np.float64)
    atol, rtol = 0.25, 0.5
    bound = atol + rtol * 2.0 if convention == "allclose" else max(atol, rtol * 2.0)
    assert compare(expected + bound, expected, atol=atol, rtol=rtol, convention=convention).passed
    one_ulp_more = np.nextafter(expected + bound, np.inf)
    assert not compare(one_ulp_more, expected, atol=atol, rtol=rtol, convention=convention).passed


def test_either_is_more_lenient_than_allclose():
    expected = np.array([1.0], np.float64)
    actual = expected + 0.15   # > atol 0.1 but < rtol*|e| = 0.2: "either" passes
    actual2 = expected + 0.25  # > 0.1 and > 0.2: "either" fails; "allclose" bound 0.1 + 0.2 = 0.3 passes
    assert compare(actual, expected, atol=0.1, rtol=0.2, convention="either").passed
    assert not compare(actual2, expected, atol=0.1, rtol=0.2, convention="either").passed
    assert compare(actual2, expected, atol=0.1, rtol=0.2, convention="allclose").passed


def test_nan_classes():
    e = np.array([1.0, np.nan, 3.0, 4.0], np.float32)
    same = compare(e.copy(), e, atol=0, rtol=0)
    assert same.passed
    a = np.array([np.nan, np.nan, 3.0, 4.0], np.float32)
    r = compare(a, e, atol=1e-3, rtol=0)["output"]
    assert not r.passed and r.nan_mismatches == 1 and r.mismatches == 1
    assert "NaN mismatches: 1 at (0,), Inf mismatches: 0" in r.message()
    strict = compare(e.copy(), e, atol=1, rtol=0, equal_nan=False)["output"]
    assert not strict.passed and strict.nan_mismatches == 1


def test_inf_classes():
    e = np.array([np.inf, -np.inf, 1.0], np.float32)
    assert compare(e.copy(), e, atol=0, rtol=0).passed
    a = np.array([-np.inf, -np.inf, 1.0], np.float32)
    r = compare(a, e, atol=1, rtol=1)["output"]
    assert r.inf_mismatches == 1 and r.mismatches == 1
    a = np.array([np.inf, 5.0, 1.0], np.float32)
    assert compare(a, e, atol=1, rtol=1)["output"].inf_mismatches == 1


def test_shape_and_dtype_mismatch_are_stated_as_such():
    r = compare(np.zeros((2, 3)), np.zeros((3, 2)))["output"]
    assert r.problem == "shape"
    assert r.message() == "output 'output': shape mismatch: actual [2, 3] vs expected [3, 2] (values not compared)"
    r = compare(np.zeros(3, np.int64), np.zeros(3, np.float32))["output"]
    assert r.problem == "dtype" and "dtype mismatch: actual int64 vs expected float32" in r.message()


def test_missing_and_unexpected_outputs():
    report = compare({"a": np.zeros(2), "extra": np.zeros(1)}, {"a": np.zeros(2), "b": np.zeros(2)})
    problems = {o.name: o.problem for o in report.outputs}
    assert problems == {"a": None, "b": "missing", "extra": "unexpected"}


def test_minimal_tolerances_are_exact():
    rng = np.random.default_rng(3)
    e = rng.standard_normal(10_000).astype(np.float64)
    a = e + rng.standard_normal(10_000) * 1e-3
    for convention in ("allclose", "either"):
        r = compare(a, e, atol=1e-5, rtol=1e-4, convention=convention)["output"]
        assert not r.passed
        assert compare(a, e, atol=r.min_atol, rtol=1e-4, convention=convention).passed
        assert not compare(a, e, atol=r.min_atol * (1 - 1e-9), rtol=1e-4, convention=convention).passed
        assert compare(a, e, atol=1e-5, rtol=r.min_rtol, convention=convention).passed
        assert not compare(a, e, atol=1e-5, rtol=r.min_rtol * (1 - 1e-9), convention=convention).passed


def test_integers_and_bools_exact():
    e = np.arange(10, dtype=np.int64)
    a = e.copy()
    a[7] = 9
    r = compare(a, e, atol=100, rtol=100)["output"]
    assert not r.passed and r.mismatches == 1 and r.max_abs.index == (7,)
    assert "integers and bools compare exactly" in r.message()
    assert compare(e.astype(np.int32), e).passed  # widths may differ (TensorRT narrows int64 to int32)
    assert not compare(np.array([True, False]), np.array([True, True]))["output"].passed


def test_fp16_and_bf16_compare_in_float32():
    e = np.linspace(-1, 1, 101, dtype=np.float32)
    assert compare(e.astype(np.float16), e, precision="fp16").passed
    bf = e.astype(ml_dtypes.bfloat16)
    r = compare(bf, e, precision="bf16")["output"]
    assert r.passed and r.actual_dtype == "bfloat16"
    assert not compare(bf, e, atol=1e-6, rtol=1e-6)["output"].passed


def test_zero_d_and_empty():
    assert compare(np.float32(1.0), np.float32(1.0)).passed
    r = compare(np.array(1.5, np.float32), np.array(1.0, np.float32), atol=0.1, rtol=0)["output"]
    assert not r.passed and r.max_abs.index == ()
    assert compare(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)).passed


def test_statistic_checks():
    e = np.ones(1000, np.float32)
    a = e.copy()
    a[0] = -1.0
    r = compare(a, e, tolerances={"output": {"cosine": 0.999, "elementwise": False}})["output"]
    assert not r.passed and r.problem == "statistics" and "cosine similarity" in r.message()
    r = compare(a, e, tolerances={"output": {"cosine": 0.99, "percentile": (99, 1e-6), "elementwise": False}})["output"]
    assert r.passed and r.statistics["p99_abs"] == 0.0
    assert not compare(a, e, tolerances={"output": {"mean_abs": 1e-3, "elementwise": False}}).passed


def test_histogram_by_decade():
    e = np.zeros(4, np.float64)
    a = np.array([0.0, 2e-3, 5e-3, 0.5])
    r = compare(a, e, atol=0, rtol=0)["output"]
    assert r.histogram == [("0", 1), ("1e-3", 2), ("1e-1", 1)]


def test_parallel_path_agrees_with_serial(monkeypatch):
    rng = np.random.default_rng(0)
    e = rng.standard_normal(300_000).astype(np.float32)
    a = e + rng.standard_normal(300_000).astype(np.float32) * 1e-4
    a[123_457] = np.nan
    serial = compare(a, e, atol=1e-4, rtol=1e-4)["output"]
    monkeypatch.setattr(scan, "PARALLEL_MIN", 1000)
    monkeypatch.setattr(scan, "_threads", lambda: 3)
    parallel = compare(a, e, atol=1e-4, rtol=1e-4)["output"]
    for field in ("mismatches", "nan_mismatches", "max_abs", "max_rel", "budget", "min_atol", "min_rtol"):
        assert getattr(parallel, field) == getattr(serial, field), field


def test_chunk_boundaries(monkeypatch):
    monkeypatch.setattr(scan, "CHUNK", 7)
    e = np.arange(50, dtype=np.float32)
    a = e.copy()
    a[[6, 7, 49]] += 1
    r = compare(a, e, atol=0.5, rtol=0)["output"]
    assert r.mismatches == 3 and r.max_abs.value == 1.0 and r.max_abs.index == (6,)


finite = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(0, 300), elements=finite),
       st.floats(0, 1, allow_nan=False), st.floats(0, 1, allow_nan=False), st.data())
def test_agrees_with_np_isclose(expected, atol, rtol, data):
    noise = data.draw(hnp.arrays(np.float64, expected.shape, elements=st.floats(-2, 2, allow_nan=False)))
    actual = expected + noise
    r = compare(actual, expected, atol=atol, rtol=rtol)["output"]
    want = int(np.count_nonzero(~np.isclose(actual, expected, atol=atol, rtol=rtol)))
    assert r.mismatches == want


def _reference_stats(actual, expected, atol, rtol, convention):
    """What the report must say, computed the slow, obvious way over whole arrays in the work dtype."""
    d = np.abs(actual - expected)
    m = np.abs(expected)
    bound = np.maximum(atol, rtol * m) if convention == "either" else atol + rtol * m
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        share = np.where(d == 0, 0, d / bound)
        rel = np.where(d == 0, 0, d / m)
    return int(np.count_nonzero(d > bound)), float(d.max()), float(rel.max()), float(share.max())


@settings(max_examples=150, deadline=None)
@given(hnp.arrays(np.float32, st.integers(1, 400), elements=st.floats(-1e3, 1e3, width=32)),
       st.sampled_from([0.0, 1e-6, 1e-3, 0.5]), st.sampled_from([0.0, 1e-6, 1e-3, 0.5]),
       st.sampled_from(["allclose", "either"]), st.floats(0.999, 1.001), st.data())
def test_float32_near_the_bound_agrees_with_the_exact_formula(expected, atol, rtol, convention, scale, data):
    """Elements placed at the bound times ~1: the rescaled fast path must hand these to the exact one."""
    signs = data.draw(hnp.arrays(np.float32, expected.shape, elements=st.sampled_from([-1.0, 1.0])))
    a32, r32 = np.float32(atol), np.float32(rtol)
    m = np.abs(expected)
    bound = np.maximum(a32, r32 * m) if convention == "either" else a32 + r32 * m
    actual = (expected + signs * bound * np.float32(scale)).astype(np.float32)
    r = compare(actual, expected, atol=atol, rtol=rtol, convention=convention)["output"]
    mismatches, max_abs, max_rel, share = _reference_stats(actual, expected, a32, r32, convention)
    assert r.mismatches == mismatches
    assert r.passed == (mismatches == 0)
    assert r.max_abs.value == max_abs
    assert r.max_rel.value == pytest.approx(max_rel, rel=1e-6)
    if np.isfinite(share):
        assert r.budget == pytest.approx(share, rel=1e-5)


@pytest.mark.parametrize("convention", ["allclose", "either"])
@pytest.mark.parametrize("atol, rtol", [(1e-3, 1e-3), (0.0, 1e-2), (1e-2, 0.0), (1e-30, 1e-38)])
def test_budget_and_extremes_match_the_obvious_computation(monkeypatch, convention, atol, rtol):
    monkeypatch.setattr(scan, "CHUNK", 1000)   # many chunks, some failing, some passing
    rng = np.random.default_rng(5)
    e = rng.standard_normal(20_000).astype(np.float32)
    e[::50] = 0.0                                       # zeros in expected (ReLU-like): 0/0 must not poison maxima
    a = (e + rng.standard_normal(20_000).astype(np.float32) * np.float32(1e-3)).astype(np.float32)
    a[::100] = 0.0                                      # ... and some exactly equal zeros
    r = compare(a, e, atol=atol, rtol=rtol, convention=convention)["output"]
    mismatches, max_abs, max_rel, share = _reference_stats(a, e, np.float32(atol), np.float32(rtol), convention)
    assert r.mismatches == mismatches
    assert r.max_abs.value == max_abs and abs(a - e)[r.max_abs.index] == max_abs
    assert r.max_rel.value == max_rel
    assert r.budget == pytest.approx(share, rel=1e-5)


def test_relative_difference_against_an_expected_zero_is_infinite():
    r = compare(np.array([0.0, 1e-3], np.float32), np.array([0.0, 0.0], np.float32), atol=1e-2, rtol=0)["output"]
    assert r.passed and r.max_rel.value == np.inf and r.max_rel.index == (1,)


def test_all_failing_chunks_are_counted_exactly(monkeypatch):
    monkeypatch.setattr(scan, "CHUNK", 256)
    e = np.linspace(-3, 3, 10_000, dtype=np.float32)
    r = compare(e + np.float32(1), e, atol=1e-5, rtol=1e-5)["output"]
    assert r.mismatches == 10_000 and r.min_atol == pytest.approx(1 - 1e-5 * 3, rel=1e-4)


def test_histogram_decades_are_exact_at_powers_of_ten():
    e = np.zeros(6, np.float32)
    a = np.array([1e-3, np.nextafter(np.float32(1e-3), np.float32(0)), 0.0, 10.0, 9.999999, 1e-45], np.float32)
    r = compare(a, e, atol=0, rtol=0)["output"]
    assert dict(r.histogram) == {"0": 1, "1e-45": 1, "1e-4": 1, "1e-3": 1, "1e0": 1, "1e1": 1}


def test_float8_compares_in_float32():
    e = np.linspace(-2, 2, 33, dtype=np.float32)
    f8 = e.astype(ml_dtypes.float8_e4m3fn)
    r = compare(f8, e, precision="fp8")["output"]
    assert r.passed and r.actual_dtype == "float8_e4m3fn"
    assert compare(f8, e, atol=1e-6, rtol=1e-6)["output"].mismatches == int(np.count_nonzero(f8.astype(np.float32) != e))


def test_failure_report_of_many_outputs_stays_readable():
    expected = {f"out{i}": np.zeros(4, np.float32) for i in range(40)}
    actual = {name: (v + (1 if i % 2 else 0)).astype(np.float32) for i, (name, v) in enumerate(expected.items())}
    text = compare(actual, expected).message
    assert text.startswith("actual vs expected: 20 of 40 outputs differ")
    assert "... and 0 more" not in text and text.count("values differ") == 20
    text = format_report(compare(actual, expected), limit=5)
    assert "... and 15 more failing outputs: out11, out13" in text
    assert "outputs that match: out0, out2" in text


@pytest.mark.parametrize("threads, float32_elements", [(1, 1 << 18), (2, 1 << 18), (4, (14 << 20) // 28 // 4)])
def test_chunk_buffers_of_all_threads_stay_within_the_memory_bound(monkeypatch, threads, float32_elements):
    monkeypatch.setattr(scan, "_threads", lambda: threads)
    assert scan._chunk_size(np.dtype(np.float32)) == float32_elements
    assert scan._chunk_size(np.dtype(np.float64)) == float32_elements // 2
    assert 7 * threads * float32_elements * 4 <= 14 << 20   # 7 buffers per thread, under 16 MiB with headroom


@pytest.mark.parametrize("convention", ["allclose", "either"])
def test_share_of_a_subnormal_bound_is_exact(convention):
    """Found by hypothesis: atol=0 at |expected| = the smallest normal float32 makes rtol*|e| subnormal; the
    reported share must be that of the bound np.isclose uses (1.0 here), not the rescaled estimate (0.95)."""
    expected = np.array([np.finfo(np.float32).tiny], np.float32)
    bound = np.float32(1e-6) * expected
    actual = (expected - bound).astype(np.float32)
    r = compare(actual, expected, atol=0.0, rtol=1e-6, convention=convention)["output"]
    mismatches, _, _, share = _reference_stats(actual, expected, np.float32(0.0), np.float32(1e-6), convention)
    assert r.mismatches == mismatches == 0 and share == 1.0
    assert r.budget == pytest.approx(share, rel=1e-6)


def test_the_kernel_is_built_where_a_compiler_is(comparator_path):
    """A packaging regression (setup.py no longer building _scan.c) would silently cost the speed."""
    import shutil
    import sysconfig

    if comparator_path == "numpy":
        pytest.skip("checked once, in the kernel run")
    compiler = shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0])
    assert compiler is None or scan._kernel is not None
    assert cmp.comparator_path() == "C kernel"


def test_numpy_path_is_selectable_by_environment(tmp_path):
    import subprocess
    import sys

    code = "import pytest_trt.comparison.compare as c; print(c.comparator_path())"
    env = {**__import__("os").environ, "PYTEST_TRT_COMPARE": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"


def test_finite_values_whose_difference_overflows():
    """3e38 - -3e38 is inf in float32: a mismatch with an infinite difference, never a crash."""
    a = np.array([3e38, 1.0, 2.0], np.float32)
    b = np.array([-3e38, 1.0, 2.0], np.float32)
    r = compare(a, b, atol=1e-3, rtol=1e-3)["output"]
    assert r.mismatches == 1 and not r.nan_mismatches and not r.inf_mismatches
    assert r.max_abs.value == np.inf and r.max_abs.index == (0,)
    assert not r.tolerance_only
    assert "no finite tolerance passes" in r.message()
    with np.errstate(over="ignore"):
        assert r.mismatches == np.count_nonzero(~np.isclose(a, b, atol=1e-3, rtol=1e-3))


_FIELDS = ("passed", "mismatches", "nan_mismatches", "inf_mismatches", "worst", "max_abs", "max_rel", "failing_indices",
           "nan_indices", "inf_indices", "min_atol", "min_rtol", "histogram")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([np.float32, np.float64]), st.integers(0, 5000),
       st.sampled_from([0.0, 1e-6, 1e-3]), st.sampled_from([0.0, 1e-6, 1e-3]),
       st.sampled_from(["allclose", "either"]), st.booleans(), st.integers(0, 2**32 - 1))
def test_kernel_and_numpy_paths_give_the_same_report(dtype, n, atol, rtol, convention, detail, seed):
    """Zeros, equal zeros, values at the bound, NaN and Inf, in every mix; many small chunks."""
    if scan._kernel is None:
        pytest.skip("the C kernel was not built")
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n).astype(dtype)
    e[rng.random(n) < 0.05] = 0
    bound = np.float32(atol) + np.float32(rtol) * np.abs(e) if dtype == np.float32 else atol + rtol * np.abs(e)
    a = (e + rng.choice([-1, 1], n) * bound * rng.choice([0.5, 1.0, 1.5, 0.0], n)).astype(dtype)
    if seed % 3 == 0 and n:
        a[rng.integers(0, n, 3)] = rng.choice([np.nan, np.inf, -np.inf], 3)
    reports = {}
    for path in ("kernel", "numpy"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scan, "CHUNK", 700)
            if path == "numpy":
                mp.setattr(scan, "_kernel", None)
            reports[path] = compare(a, e, atol=atol, rtol=rtol, convention=convention, detail=detail)["output"]
    kernel, numpy_ = reports["kernel"], reports["numpy"]
    for field in _FIELDS:
        assert getattr(kernel, field) == getattr(numpy_, field), field
    assert kernel.budget == pytest.approx(numpy_.budget, rel=1e-5, nan_ok=True)


def test_either_smallest_rtol_ignores_elements_within_atol():
    """'either' fails only where d > atol too: an expected 0 with d == atol must not demand rtol = inf."""
    e = np.array([0.0, 1.0, 2.0], np.float32)
    a = np.array([1e-3, 1.0, 2.5], np.float32)
    r = compare(a, e, atol=1e-3, rtol=1e-3, convention="either")["output"]
    assert r.mismatches == 1
    assert r.min_atol == 0.5 and r.min_rtol == 0.25


# ------------------------------------------------------------------- what failed, and where (issue 16.1)

def _retrained(dtype=np.float32):
    """3600 elements, one failing at 103.5% of its bound; the greatest absolute difference (90% of a wide
    bound) and the greatest relative one (90% of a bound that is almost all atol) are elsewhere, within."""
    e = np.full((3, 8, 150), 0.5, dtype)
    e[0, 0, 0], e[1, 2, 3] = 100.0, 1e-6
    a = e.copy()
    bound = lambda x: 1e-5 + 1e-3 * x                  # atol=1e-5, rtol=1e-3
    a[0, 0, 0] += 0.9 * bound(100.0)
    a[1, 2, 3] += 0.9 * bound(1e-6)
    a[2, 7, 61] += 1.035 * bound(0.5)
    return a, e


def test_the_report_names_the_element_that_failed_though_it_is_no_extreme():
    a, e = _retrained()
    r = compare(a, e, atol=1e-5, rtol=1e-3)["output"]
    assert r.mismatches == 1
    assert r.max_abs.index == (0, 0, 0) and r.max_abs.share < 1
    assert r.max_rel.index == (1, 2, 3) and r.max_rel.share < 1
    assert r.worst.index == (2, 7, 61) and r.worst.share == pytest.approx(1.035, rel=1e-4)
    assert r.worst.value == pytest.approx(1.035 * (1e-5 + 5e-4), rel=1e-4) and r.worst.expected == 0.5
    assert r.failing_indices == ((2, 7, 61),)
    text = r.message()
    assert "largest share of its bound: 103.5% at index (2, 7, 61) (actual 0.500528, expected 0.5, " \
           "|a-b| 0.000527859, allowed 0.00051)" in text, text
    assert "greatest absolute difference: 0.0900116 at index (0, 0, 0) (actual 100.09, expected 100; " \
           "allowed 0.10001, 90% of it)" in text, text
    assert "greatest relative difference: 9.0009 at index (1, 2, 3) (actual 1.00009e-05, expected 1e-06; " \
           "allowed 1.0001e-05, 90% of it)" in text, text
    assert "failing indices: (2, 7, 61)\n" in text


def test_a_share_just_over_the_bound_never_reads_100_percent():
    e = np.array([1.0], np.float64)
    r = compare(e + 1.000001 * 1e-3, e, atol=1e-3, rtol=0)["output"]
    assert not r.passed and "largest share of its bound: 100.0001% at index (0,)" in r.message()


def test_first_failing_indices_are_the_first_five_in_index_order(monkeypatch):
    monkeypatch.setattr(scan, "CHUNK", 64)               # failures in several chunks, found chunk by chunk
    e = np.zeros(1000, np.float32)
    a = e.copy()
    where = [3, 70, 71, 500, 640, 641, 999]
    a[where] = 1.0
    a[[10, 300]] = [np.nan, np.inf]
    r = compare(a, e, atol=0.5, rtol=0)["output"]
    assert r.failing_indices == ((3,), (10,), (70,), (71,), (300,))
    assert r.nan_indices == ((10,),) and r.inf_indices == ((300,),)
    assert "first failing indices: (3,), (10,), (70,), (71,), (300,), ...\n" in r.message()


def test_nan_and_inf_mismatches_show_their_indices_and_no_tolerance_that_would_pass():
    e = np.arange(1.0, 9.0, dtype=np.float32).reshape(2, 4)
    a = e.copy()
    a[0, 2], a[1, 1] = np.nan, np.inf
    text = compare(a, e, atol=1e-3, rtol=1e-3)["output"].message()
    assert "of which NaN mismatches: 1 at (0, 2), Inf mismatches: 1 at (1, 1)\n" in text
    assert "failing indices: (0, 2), (1, 1)\n" in text
    assert "no tolerance passes NaN or Inf mismatches\n" in text
    assert "would pass" not in text
    a[0, 0] += 1                                        # a finite failure too: its tolerance is still named
    text = compare(a, e, atol=1e-3, rtol=1e-3)["output"].message()
    assert "the other elements would pass with atol >= 0.999 (at rtol 0.001)" in text


def test_integer_failures_list_their_indices():
    e = np.arange(12, dtype=np.int64).reshape(3, 4)
    a = e.copy()
    a[1, 3] = a[2, 0] = -1
    r = compare(a, e)["output"]
    assert r.failing_indices == ((1, 3), (2, 0)) and "failing indices: (1, 3), (2, 0)" in r.message()


# ------------------------------------------------------------------------- the histogram (issue 16.8)

def _plain_decades(a, e):
    """|a-b| by decade the obvious way: float64 log10 of float32 differences (exact for float32 values)."""
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(a.astype(np.float32) - e.astype(np.float32)).astype(np.float64)
    d = d[np.isfinite(d)]
    counts = {}
    if np.count_nonzero(d == 0):
        counts["0"] = int(np.count_nonzero(d == 0))
    k, n = np.unique(np.floor(np.log10(d[d > 0])).astype(int), return_counts=True)
    counts.update({f"1e{i}": int(c) for i, c in zip(k, n)})
    return counts


def test_histogram_of_a_many_chunk_output_matches_a_plain_count():
    """1e6 elements (4 chunks), 1% failing: each decade counted once, over every element."""
    rng = np.random.default_rng(7)
    e = rng.standard_normal(1_000_000).astype(np.float32)
    a = (e * np.float32(1 + 2e-6)).astype(np.float32)
    off = rng.choice(e.size, e.size // 100, replace=False)
    a[off] += np.float32(1.0)
    r = compare(a, e, atol=1e-5, rtol=1e-5)["output"]
    assert r.mismatches == np.count_nonzero(~np.isclose(a, e, atol=1e-5, rtol=1e-5))
    assert dict(r.histogram) == _plain_decades(a, e)
    assert sum(c for _, c in r.histogram) == e.size
    assert [k for k, _ in r.histogram] == sorted((k for k, _ in r.histogram), key=lambda k: -1000 if k == "0" else int(k[2:]))


@pytest.mark.parametrize("where", ["first chunk", "last chunk", "second thread only", "nan in a late chunk"])
def test_histogram_counts_the_chunks_before_the_first_failure(monkeypatch, where):
    monkeypatch.setattr(scan, "CHUNK", 1000)
    monkeypatch.setattr(scan, "PARALLEL_MIN", 1000)
    monkeypatch.setattr(scan, "_threads", lambda: 2)
    rng = np.random.default_rng(3)
    e = rng.standard_normal(20_000).astype(np.float32)
    a = (e + rng.standard_normal(20_000).astype(np.float32) * np.float32(1e-7) * np.abs(e)).astype(np.float32)
    at = {"first chunk": 5, "last chunk": 19_990, "second thread only": 12_345, "nan in a late chunk": 17_000}[where]
    a[at] = np.nan if where.startswith("nan") else a[at] + 1
    r = compare(a, e, atol=1e-5, rtol=1e-5)["output"]
    assert r.failing_indices == ((at,),)
    assert dict(r.histogram) == _plain_decades(a, e)
    assert sum(c for _, c in r.histogram) == e.size - (1 if where.startswith("nan") else 0)


def test_histogram_of_float64_spans_its_whole_range():
    e = np.zeros(5)
    a = np.array([5e-324, 1e-300, 1e-5, 1.0, 1e300])
    assert dict(compare(a, e, atol=0, rtol=0)["output"].histogram) == {
        "1e-324": 1, "1e-300": 1, "1e-5": 1, "1e0": 1, "1e300": 1}


# ------------------------------------------------------------------- float16 and bfloat16 in the kernel

@pytest.mark.parametrize("kind", ["float16", "bfloat16"])
@pytest.mark.parametrize("against", ["same", "float32"])
def test_every_16_bit_pattern_compares_as_numpy_widens_it(kind, against):
    """All 65536 bit patterns (NaN, Inf, subnormals, -0) read by the kernel as numpy converts them."""
    dtype = ml_dtypes.bfloat16 if kind == "bfloat16" else np.float16
    a = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.roll(a, 1) if against == "same" else np.roll(a.astype(np.float32), 1) * np.float32(1.001)
    r = compare(a, e, atol=1e-3, rtol=1e-2)["output"]
    a32, e32 = a.astype(np.float32), np.asarray(e).astype(np.float32)
    with np.errstate(all="ignore"):
        want = np.count_nonzero(~np.isclose(a32, e32, atol=np.float32(1e-3), rtol=np.float32(1e-2), equal_nan=True))
        finite = np.isfinite(a32) & np.isfinite(e32)
    assert r.mismatches == want
    assert r.max_abs.value == np.abs(a32[finite] - e32[finite]).max()
    assert dict(r.histogram) == _plain_decades(a32, e32)


@pytest.mark.parametrize("kind", ["float16", "bfloat16", "float8_e4m3fn"])
def test_histogram_of_narrow_floats_counts_the_chunks_before_the_first_failure(monkeypatch, kind):
    """The passing chunks before a late failure are counted afterwards, widened as the scan widened them."""
    monkeypatch.setattr(scan, "CHUNK", 1000)
    dtype = getattr(ml_dtypes, kind) if kind != "float16" else np.float16
    a = np.linspace(-4, 4, 10_000, dtype=np.float32).astype(dtype)
    e = (a.astype(np.float32) * np.float32(1.0001)).astype(np.float32)   # within 1e-3 + 1e-3*|e|
    a[9_500] = 8.0
    r = compare(a, e, atol=1e-3, rtol=1e-3)["output"]
    assert r.failing_indices[0] == (9_500,)
    assert dict(r.histogram) == _plain_decades(a.astype(np.float32), e)


def test_decade_tables_are_exact_at_every_power_of_ten():
    """Each table entry is the smallest value >= 10**k (checked with fractions, which the module avoids)."""
    from fractions import Fraction

    for work in (np.dtype(np.float32), np.dtype(np.float64)):
        tables = stats.decades(work)
        floors = [stats._decade_floor(k, work) for k in range(tables.kmin, tables.kmin + tables.bins - 2)]
        for k, value in enumerate(floors, tables.kmin):
            below = np.nextafter(value, work.type(0))
            assert Fraction(float(value)) >= Fraction(10) ** k > (Fraction(float(below)) if below else -1), (work, k)
        lowest = np.array(floors, work)
        counts = stats.bin_counts(np.concatenate([lowest, [np.nextafter(x, work.type(0)) for x in lowest]]).astype(work), work)
        assert list(counts[1:-1]) == [2] * (tables.bins - 3) + [1]   # each power of ten opens its own bin


def test_kernel_gets_the_histogram_tables_the_numpy_path_built_first(monkeypatch):
    """A process whose first float64 comparison ran on the numpy path still hands the tables to the kernel."""
    if scan._kernel is None:
        pytest.skip("the C kernel is not built here")
    kernel = scan._kernel
    monkeypatch.setattr(stats, "_DECADES", {})
    monkeypatch.setattr(scan, "_KERNEL_DECADES", set())
    a, b = np.linspace(0, 1, 100), np.linspace(0, 1, 100) + 1e-3
    monkeypatch.setattr(scan, "_kernel", None)
    numpy_report = cmp.compare(a, b, atol=1e-6, rtol=0)
    monkeypatch.setattr(scan, "_kernel", kernel)
    kernel_report = cmp.compare(a, b, atol=1e-6, rtol=0)
    assert kernel_report.outputs[0].histogram == numpy_report.outputs[0].histogram


def test_float32_decade_floors_are_the_computed_ones():
    """The float32 table shipped as constants is what _decade_floor computes exactly."""
    work = np.dtype(np.float32)
    info = np.finfo(work)
    kmin, kmax = stats._decade(float(info.smallest_subnormal), work), stats._decade(float(info.max), work)
    computed = np.array([stats._decade_floor(k, work) for k in range(kmin, kmax + 1)], work).view(np.uint32)
    assert kmin == stats._FLOAT32_KMIN
    assert tuple(int(x) for x in computed) == stats._FLOAT32_FLOORS
