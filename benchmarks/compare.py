"""Comparator speed and memory against the alternatives, all measured in this one run.

    pip install -c .ci/constraints.txt -e ".[bench]"
    python benchmarks/compare.py                 # sizes 1e6, 1e7, 1e8 (about 5 minutes on 2 cores)
    python benchmarks/compare.py --sizes 1e6,1e7 # quicker
    python benchmarks/compare.py --floor-only    # only the table against the floor (needs no [bench] extra)

First, per size, pytest-trt's compare against the FLOOR: the time to merely read both arrays once
(``np.maximum.reduce`` over integer views of each), measured in the same run, so that the ratios hold
on any machine. Cases: float32 passing, failing with 1% and with 100% of the elements off by 1;
float16 and bfloat16 (both sides, and beside a float32 expected side), passing and 1% failing.
Printed: time, time / floor, failing / passing, and np.allclose on the same arrays / pytest-trt.
Targets: failing <= 2x passing and faster than np.allclose; float16/bfloat16 <= 3x the floor.

Then, for float32 outputs of each size, passing (every element within tolerance) and failing (every
element off by 1), it times and measures the peak extra memory of:

- compare:   ``pytest_trt.compare`` (full report; C kernel, and its numpy path for reference)
             | ``np.allclose`` | ``np.testing.assert_allclose``
             | Polygraphy's ``Comparator.compare_accuracy`` (in memory)
- golden check (golden read from disk + compare, nothing written on pass):
             pytest-trt's ``read_golden`` + compare | pytest-regressions ``ndarrays_regression.check``
             (inside a real pytest session) | Polygraphy saved outputs (``RunResults.load`` + compare,
             as ``polygraphy run --load-outputs`` does)

Times are the best of REPEATS calls (fewer at 1e8); memory is tracemalloc's peak during one call,
which counts numpy's heap buffers but not memory-mapped file pages. Tolerances: atol = rtol = 1e-5.
It prints one table per size and the ratios the targets are stated in (docs: README, Performance).
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_trt import compare# noqa: E402
from pytest_trt.comparison import scan  # noqa: E402
from pytest_trt.comparison.compare import comparator_path, compare_outputs  # noqa: E402
from pytest_trt.goldens.store import read_golden, write_golden  # noqa: E402
from pytest_trt.core.tolerance import Tolerance  # noqa: E402

ATOL = RTOL = 1e-5
TOLERANCE = Tolerance(atol=ATOL, rtol=RTOL)
MiB = 1 << 20
REPEATS_NOTE = "9 calls (3 at 1e8; a third of that for the numpy path and np.allclose)"


def measure(call, repeats: int) -> tuple[float, float]:
    """(best seconds, peak extra MiB) of ``call()``; memory from a separate traced call."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    try:
        call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return best, peak / MiB


# ----------------------------------------------------------------------------------------- tools

def ours_compare(actual, expected):
    report = compare(actual, expected, atol=ATOL, rtol=RTOL)
    report.message  # the failure text is part of the work on failure
    return report.passed


def ours_compare_numpy_path(actual, expected):
    """The same call with the C kernel switched off (what runs where it was not built)."""
    kernel, scan._kernel = scan._kernel, None
    try:
        return ours_compare(actual, expected)
    finally:
        scan._kernel = kernel


def np_allclose(actual, expected):
    return bool(np.allclose(actual, expected, atol=ATOL, rtol=RTOL))


def np_assert_allclose(actual, expected):
    try:
        np.testing.assert_allclose(actual, expected, atol=ATOL, rtol=RTOL)
        return True
    except AssertionError:
        return False


def _polygraphy():
    from polygraphy.comparator import Comparator, IterationResult, RunResults, SimpleCompareFunc
    from polygraphy.logger import G_LOGGER

    G_LOGGER.module_severity = G_LOGGER.CRITICAL  # do not charge it for printing to the terminal
    return SimpleCompareFunc, Comparator, IterationResult, RunResults


def polygraphy_compare(actual, expected, golden_results=None):
    SimpleCompareFunc, Comparator, IterationResult, RunResults = _polygraphy()
    results = golden_results if golden_results is not None else RunResults(
        [("golden", [IterationResult({"out": expected}, runner_name="golden")])])
    results.append(("actual", [IterationResult({"out": actual}, runner_name="actual")]))
    accuracy = Comparator.compare_accuracy(results, compare_func=SimpleCompareFunc(atol=ATOL, rtol=RTOL))
    return bool(accuracy)


def polygraphy_saved(actual, path):
    _, _, _, RunResults = _polygraphy()
    return polygraphy_compare(actual, None, RunResults.load(str(path)))


def ours_golden(actual, folder):
    golden = read_golden(folder, "reference", "(benchmark)")
    reports = compare_outputs({"out": actual}, golden.arrays, lambda name: TOLERANCE)
    return all(r.passed for r in reports)


REGRESSIONS_TEST = """
import pytest

@pytest.mark.parametrize("case", CASES)
def test_check(ndarrays_regression, bench, case):
    actual, golden, repeats = bench["arrays"][case]
    def call():
        try:
            ndarrays_regression.check({"out": actual}, fullpath=golden,
                                      default_tolerance=dict(atol=ATOL, rtol=RTOL))
            return True
        except AssertionError:
            return False
    bench["results"][case] = bench["measure"](call, repeats)
"""


class _RegressionsBench:
    """A pytest plugin object handing the arrays to the generated test and collecting its timings."""

    def __init__(self, arrays):
        self.state = {"arrays": arrays, "results": {}, "measure": measure}

    @pytest.fixture
    def bench(self):
        return self.state


def regressions_check(cases: dict, workdir: Path) -> dict:
    """Run pytest-regressions' check in a real pytest session; returns {case: (seconds, MiB)}."""
    test = workdir / f"test_regressions_{workdir.name.replace('-', '_')}.py"
    test.write_text(f"CASES = {sorted(cases)!r}\nATOL = {ATOL!r}\nRTOL = {RTOL!r}\n" + REGRESSIONS_TEST)
    plugin = _RegressionsBench(cases)
    code = pytest.main([str(test), "-q", "-p", "no:cacheprovider", "-p", "no:trt", "--rootdir", str(workdir),
                        "-W", "ignore"], plugins=[plugin])
    if code != 0 or len(plugin.state["results"]) != len(cases):
        raise SystemExit(f"pytest-regressions benchmark session failed (exit {code})")
    return plugin.state["results"]


# ----------------------------------------------------------------------------------------- driver

def make_arrays(n: int):
    rng = np.random.default_rng(0)
    expected = rng.standard_normal(n, dtype=np.float32)
    passing = expected * np.float32(1 + 2e-6)       # relative error 2e-6: within atol + rtol*|e|
    failing = expected + np.float32(1.0)            # every element off
    return expected, passing, failing


def run_size(n: int, tmp: Path, skip_slow: bool) -> list[tuple[str, str, float, float]]:
    repeats = 9 if n <= 10_000_000 else 3
    slow_repeats = 3 if n <= 1_000_000 else 1
    expected, passing, failing = make_arrays(n)
    rows = []

    def add(group, tool, outcome, call, reps=repeats):
        seconds, mib = measure(call, reps)
        rows.append((group, tool, outcome, seconds, mib))
        print(f"  {group:<8} {tool:<34} {outcome:<5} {seconds * 1e3:10.2f} ms {mib:10.2f} MiB", flush=True)

    folder = tmp / f"ours-{n}"
    write_golden(folder, "reference", {"out": expected}, {"benchmark": True})
    os.sync()  # let the kernel write it back now, not while a timed call runs
    for outcome, actual in (("pass", passing), ("fail", failing)):
        assert ours_compare(actual, expected) == (outcome == "pass")
        assert np_allclose(actual, expected) == (outcome == "pass")
        add("compare", "pytest-trt compare", outcome, lambda: ours_compare(actual, expected))
        if comparator_path() == "C kernel":
            add("compare", "pytest-trt compare, numpy path", outcome, lambda: ours_compare_numpy_path(actual, expected))
        add("compare", "np.allclose", outcome, lambda: np_allclose(actual, expected))
        add("compare", "np.testing.assert_allclose", outcome, lambda: np_assert_allclose(actual, expected))
        if not skip_slow:
            add("compare", "polygraphy compare_accuracy", outcome,
                lambda: polygraphy_compare(actual, expected), slow_repeats)
        add("golden", "pytest-trt read_golden + compare", outcome, lambda: ours_golden(actual, folder))
    if not skip_slow:
        _, _, IterationResult, RunResults = _polygraphy()
        saved = tmp / f"polygraphy-{n}.json"
        RunResults([("golden", [IterationResult({"out": expected}, runner_name="golden")])]).save(str(saved))
        for outcome, actual in (("pass", passing), ("fail", failing)):
            add("golden", "polygraphy saved outputs", outcome, lambda: polygraphy_saved(actual, saved), slow_repeats)
        regressions_dir = tmp / f"regressions-{n}"
        regressions_dir.mkdir()
        golden_npz = regressions_dir / "golden.npz"
        np.savez_compressed(golden_npz, out=expected)   # what its first run (or --force-regen) records
        cases = {outcome: (actual, golden_npz, slow_repeats) for outcome, actual in (("pass", passing), ("fail", failing))}
        for outcome, (seconds, mib) in sorted(regressions_check(cases, regressions_dir).items(), reverse=True):
            rows.append(("golden", "pytest-regressions ndarrays check", outcome, seconds, mib))
            print(f"  {'golden':<8} {'pytest-regressions ndarrays check':<34} {outcome:<5} {seconds * 1e3:10.2f} ms "
                  f"{mib:10.2f} MiB", flush=True)
    return rows


def ratios(rows, n):
    def t(tool, outcome):
        for _, name, o, seconds, _ in rows:
            if name == tool and o == outcome:
                return seconds
        return None

    out = []
    ours, ours_g = t("pytest-trt compare", "pass"), t("pytest-trt read_golden + compare", "pass")
    for other, target in (("np.allclose", 6), ("np.testing.assert_allclose", 12), ("polygraphy compare_accuracy", None)):
        if t(other, "pass"):
            out.append(f"compare, pass: {other} / pytest-trt = {t(other, 'pass') / ours:.1f}x"
                       + (f" (target >= {target}x at 1e7)" if target else ""))
    for other in ("pytest-regressions ndarrays check", "polygraphy saved outputs"):
        if t(other, "pass"):
            out.append(f"golden check, pass: {other} / pytest-trt = {t(other, 'pass') / ours_g:.0f}x (target >= 50x at 1e7)")
    out.append(f"pytest-trt compare, fail / pass = {t('pytest-trt compare', 'fail') / ours:.2f} (target < 2 at 1e8)")
    peak = max(mib for _, name, _, _, mib in rows if name == "pytest-trt compare")
    out.append(f"pytest-trt compare peak extra memory: {peak:.2f} MiB (target <= 16 MiB)")
    return out


# ------------------------------------------------------------------------------ against the floor

def floor_arrays(n: int) -> dict:
    """name -> (actual, expected, precision) for the floor table."""
    import ml_dtypes

    rng = np.random.default_rng(0)
    expected = rng.standard_normal(n, dtype=np.float32)
    passing = expected * np.float32(1 + 2e-6)
    off = rng.choice(n, max(1, n // 100), replace=False)
    one_percent = passing.copy()
    one_percent[off] += np.float32(1.0)
    cases = {"float32 pass": (passing, expected, "fp32"), "float32 fail 1%": (one_percent, expected, "fp32"),
             "float32 fail 100%": (expected + np.float32(1.0), expected, "fp32")}
    for name, dtype, precision in (("float16", np.float16, "fp16"), ("bfloat16", ml_dtypes.bfloat16, "bf16")):
        e16 = expected.astype(dtype)
        cases[f"{name} pass"] = (passing.astype(dtype), e16, precision)
        cases[f"{name} fail 1%"] = (one_percent.astype(dtype), e16, precision)
        cases[f"{name} vs float32 pass"] = (passing.astype(dtype), expected, precision)
    return cases


def _int_view(x: np.ndarray) -> np.ndarray:
    return x.view({2: np.int16, 4: np.int32, 8: np.int64}[x.dtype.itemsize])


def floor_table(n: int, repeats: int) -> list[str]:
    """Per case: pytest-trt compare (kernel), its numpy path, np.allclose, each over the floor."""
    lines = []
    passing = {}
    for name, (actual, expected, precision) in floor_arrays(n).items():
        ia, ie = _int_view(actual), _int_view(expected)
        floor, _ = measure(lambda: (np.maximum.reduce(ia), np.maximum.reduce(ie)), repeats)

        def ours():
            report = compare(actual, expected, precision=precision)
            report.message
            return report.passed

        assert ours() == name.endswith("pass"), name
        ours_t, ours_mib = measure(ours, repeats)
        kernel, scan._kernel = scan._kernel, None
        try:
            numpy_t, _ = measure(ours, max(1, repeats // 3))
        finally:
            scan._kernel = kernel
        a32, e32 = actual.astype(np.float32), expected.astype(np.float32)   # np.allclose on float32 (fp16 is slower)
        close = lambda: np.allclose(actual, expected, atol=ATOL, rtol=RTOL) if actual.dtype == expected.dtype == np.float32 \
            else np.allclose(a32, e32, atol=ATOL, rtol=RTOL)
        close_t, _ = measure(close, max(1, repeats // 3))
        kind = name.rsplit(" ", 2)[0] if "fail" in name else name[:-5]
        if name.endswith("pass"):
            passing[kind] = ours_t
        versus = f"{ours_t / passing[kind]:6.2f}" if kind in passing and not name.endswith("pass") else "     -"
        lines.append(f"  {n:.0e}  {name:<26} {floor * 1e3:9.3f} {ours_t * 1e3:10.3f} {ours_t / floor:8.2f} {versus:>9} "
                     f"{close_t / ours_t:10.2f} {numpy_t / floor:10.2f} {ours_mib:9.2f}")
        print(lines[-1], flush=True)
    return lines


FLOOR_HEAD = (f"  {'size':<5} {'case':<26} {'floor ms':>9} {'ours ms':>10} {'/floor':>8} {'fail/pass':>9} "
              f"{'allclose/us':>10} {'numpy-path/floor':>10} {'peak MiB':>9}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1e6,1e7,1e8", help="comma-separated element counts (default 1e6,1e7,1e8)")
    parser.add_argument("--no-slow", action="store_true", help="leave out Polygraphy and pytest-regressions")
    parser.add_argument("--floor-only", action="store_true", help="only the table against the floor")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs; pytest-trt comparator: {comparator_path()}; "
          f"default tolerances per precision; best of {REPEATS_NOTE}")
    print("\nagainst the floor (the time to read both arrays once: np.maximum.reduce over integer views)")
    print(FLOOR_HEAD)
    for n in sizes:
        floor_table(n, 9 if n <= 10_000_000 else 3)
    if args.floor_only:
        return 0
    import polygraphy
    import pytest_regressions  # noqa: F401
    from importlib.metadata import version

    print(f"numpy {np.__version__}, polygraphy {polygraphy.__version__}, pytest-regressions "
          f"{version('pytest-regressions')}, {os.cpu_count()} CPUs; atol = rtol = {ATOL:g}; "
          f"pytest-trt comparator: {comparator_path()}")
    summary = []
    with tempfile.TemporaryDirectory(prefix="pytest-trt-bench-") as tmp:
        for n in sizes:
            print(f"\nfloat32, {n:.0e} elements ({n * 4 / MiB:.0f} MiB per array)")
            print(f"  {'group':<8} {'tool':<34} {'case':<5} {'time':>13} {'peak extra':>14}")
            rows = run_size(n, Path(tmp), args.no_slow)
            summary.append((n, ratios(rows, n)))
    print("\nratios (same run)")
    for n, lines in summary:
        for line in lines:
            print(f"  {n:.0e}: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
