"""Reports people read: summary rows, accuracy budget and drift, failure artifacts, JUnit, suggestions, progress.

Real pytest runs (pytester), real ONNX models, real onnxruntime. The engine side on this CPU machine is
either skipped (reference vs golden) or, for drift, a small third-party backend installed as a real
distribution: ``shifted`` runs onnxruntime and adds a constant to float outputs. It stands in for a
TensorRT engine whose numerics change between versions (TensorRT cannot run here).
"""
import json
import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from models import scale_model, two_io_model

from shared import INI

# y = x * factor on x = ones(2, 4): the error against a golden recorded at factor 2.0 is exactly |factor - 2|.
ONES_TEST = textwrap.dedent("""
    import numpy as np
    import pytest

    @pytest.mark.trt_compare(model="models/scale.onnx", atol=1e-3, rtol=0.0)
    def test_scale(trt_compare):
        trt_compare(inputs={"x": np.ones((2, 4), np.float32)})
""")


@pytest.fixture
def repo(repo):
    scale_model(repo.path / "models" / "scale.onnx", dims=(2, 4), factor=2.0)
    return repo


def _rescale(repo, factor):
    scale_model(repo.path / "models" / "scale.onnx", dims=(2, 4), factor=factor)


def _rows(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("  test_") or line.startswith("  test ")]


# ------------------------------------------------------------------------------ summary and budget

def test_summary_rows_compact_by_default_full_on_request(repo):
    repo.makepyfile(test_a=ONES_TEST + textwrap.dedent("""
        @pytest.mark.trt_compare(model="models/scale.onnx", atol=1e-3, rtol=0.0, precision=["fp32", "fp16"])
        def test_other(trt_compare):
            trt_compare(inputs={"x": np.full((2, 4), 0.5, np.float32)})
    """))
    repo.runpytest("--update-golden").assert_outcomes(passed=3)
    _rescale(repo, 2.0 + 0.85e-3)  # test_scale: 85% of atol; test_other: x=0.5 -> 42.5%
    result = repo.runpytest()
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "checks: 3, 3 passed, 0 failed, 1 close to tolerance, 0 drifted" in out
    rows = _rows(out)
    assert len(rows) == 2, out  # header + the one close row
    assert re.match(r"  test_a\.py::test_scale +fp32 +none +y \(reference vs golden\) +8\.5\de-04 +4\.2\de-04 +85% +"
                    r"model changed +- +- +close$", rows[1]), rows[1]  # within tolerance, recorded from the old model

    full = repo.runpytest("--trt-summary", "full").stdout.str()
    rows = _rows(full)
    assert [r.split()[0:2] for r in rows[1:]] == [["test_a.py::test_other", "fp16"], ["test_a.py::test_other", "fp32"],
                                                  ["test_a.py::test_scale", "fp32"]]
    assert " 42% " in rows[1] or " 43% " in rows[1], rows[1]
    assert len(_rows(repo.runpytest("-v").stdout.str())) == 4

    # a higher threshold: nothing is close any more, and compact shows no table
    quiet = repo.runpytest("--trt-close-share", "0.9").stdout.str()
    assert "checks: 3, 3 passed, 0 failed, 0 close to tolerance, 0 drifted (--trt-summary full or -v lists every check)" in quiet
    assert _rows(quiet) == []


def test_failed_check_row_and_xdist_merge(repo):
    pytest.importorskip("xdist")
    repo.makepyfile(test_a=ONES_TEST, test_b=ONES_TEST.replace("test_scale", "test_scale_b"))
    repo.runpytest("--update-golden").assert_outcomes(passed=2)
    _rescale(repo, 2.003)
    result = repo.runpytest("-n", "2", "--trt-summary", "full")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "checks: 2, 0 passed, 2 failed, 0 close to tolerance, 0 drifted" in out
    rows = _rows(out)
    assert len(rows) == 3 and all(" 300% " in r and r.endswith("FAILED") for r in rows[1:]), rows


@pytest.mark.parametrize("value, message", [
    ("1.5", "--trt-close-share '1.5' is not a number from 0 to 1; use e.g. --trt-close-share=0.8"),
    ("x", "--trt-close-share 'x' is not a number from 0 to 1; use e.g. --trt-close-share=0.8"),
])
def test_bad_close_share_is_a_usage_error(repo, value, message):
    repo.makepyfile(test_a=ONES_TEST)
    result = repo.runpytest("--trt-close-share", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


# -------------------------------------------------------------------------------------------- drift

SHIFTED_BACKEND = """
    import os
    import numpy as np

    class ShiftedOnnxRuntime:
        '''Test stand-in for a TensorRT engine: onnxruntime plus a constant from $SHIFT on float outputs.'''
        name = "shifted"
        def unavailable_reason(self): return None
        def precision_reason(self, precision): return None
        def describe(self): return {"backend": "shifted", "version": os.environ.get("SHIFT", "0")}
        def run(self, model, inputs, *, precision="fp32", options=None):
            from pytest_trt.backends.registry import get_backend
            out = get_backend("onnxruntime").run(model, inputs)
            shift = np.float32(os.environ.get("SHIFT", "0"))
            return {k: (v + shift if v.dtype.kind == "f" else v) for k, v in out.items()}
"""


@pytest.fixture
def shifted(pytester):
    """A real installed distribution providing the 'shifted' backend (entry point) on PYTHONPATH."""
    site = pytester.mkdir("site")
    (site / "shifted_backend.py").write_text(textwrap.dedent(SHIFTED_BACKEND))
    dist = site / "shifted_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shifted-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest_trt.backends]\nshifted = shifted_backend:ShiftedOnnxRuntime\n")

    def run(shift, *args):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               "SHIFT": str(shift)}
        return subprocess.run([sys.executable, "-m", "pytest", "--trt-backend", "shifted", *args],
                              cwd=pytester.path, capture_output=True, text=True, env=env, timeout=300)
    return run


def test_drift_warns_and_strict_drift_fails(repo, shifted):
    repo.makepyfile(test_a=ONES_TEST.replace("atol=1e-3, rtol=0.0", "atol=1e-4, rtol=0.0"))
    base = 2.0 ** -16  # shifts of 2 +- k * 2**-16 are exact in float32, so the errors below are exact too
    first = shifted(base, "--update-golden")
    assert first.returncode == 0, first.stdout
    sidecar = json.loads(next((repo.path / "golden").rglob("engine*.json")).read_text())
    assert sidecar["errors_vs_reference"]["y"] == {"max_abs": base, "budget": base / 1e-4}

    same = shifted(1.5 * base)  # 1.5x: not drift at the default factor 2
    assert same.returncode == 0 and "0 drifted" in same.stdout, same.stdout

    grown = shifted(4 * base)  # 4x the recorded error, 61% of the tolerance: drift, a warning
    assert grown.returncode == 0, grown.stdout
    assert "1 drifted" in grown.stdout
    assert ("drift: test_a.py::test_scale [fp32]: output 'y' error against the reference grew 4.0x since its golden "
            "was recorded (max abs 1.53e-05 -> 6.1e-05; 15% -> 61% of its tolerance)") in grown.stdout, grown.stdout
    assert "TrtDriftWarning" in grown.stdout

    assert "0 drifted" in shifted(4 * base, "--trt-drift-factor", "5").stdout
    as_error = shifted(4 * base, "-W", "error::pytest_trt.TrtDriftWarning")  # the documented filter works
    assert as_error.returncode == 1 and "TrtDriftWarning: test_a.py::test_scale [fp32]: output 'y'" in as_error.stdout
    strict = shifted(4 * base, "--trt-strict-drift")
    assert strict.returncode == 1, strict.stdout
    assert "drift (--trt-strict-drift): output 'y' error against the reference grew 4.0x" in strict.stdout


# ------------------------------------------------------------------------------- failure artifacts

def test_failure_artifacts_with_plots(repo):
    pytest.importorskip("matplotlib")
    import matplotlib.backends.backend_agg  # noqa: F401  imported here, pytester's in-process runs keep one copy
    import matplotlib.figure  # noqa: F401
    from PIL import Image

    repo.makepyfile(test_a=textwrap.dedent("""
        import pytest
        @pytest.mark.trt_compare(model="models/scale.onnx", atol=1e-4, rtol=0.0)
        def test_scale(trt_compare):
            trt_compare()
    """))
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    _rescale(repo, 2.01)
    target = repo.path / "artifacts"
    result = repo.runpytest("--trt-artifacts", str(target))
    result.assert_outcomes(failed=1)
    folder = target / "test_a" / "test_scale" / "fp32"
    result.stdout.fnmatch_lines([f"*failure artifacts in {folder}: inputs.npz, reference.npz, golden-reference.npz, "
                                 "report.json; plots: reference-vs-golden--y--histogram.png, "
                                 "reference-vs-golden--y--heatmap.png"])
    inputs = np.load(folder / "inputs.npz", allow_pickle=False)
    reference = np.load(folder / "reference.npz", allow_pickle=False)
    golden = np.load(folder / "golden-reference.npz", allow_pickle=False)
    np.testing.assert_array_equal(reference["y"], inputs["x"] * np.float32(2.01))
    np.testing.assert_array_equal(golden["y"], inputs["x"] * np.float32(2.0))
    report = json.loads((folder / "report.json").read_text())
    y = report["comparisons"]["reference-vs-golden"]["outputs"][0]
    assert report["passed"] is False and y["name"] == "y" and y["mismatches"] > 0 and y["budget"] > 1
    for png in folder.glob("*.png"):
        with Image.open(png) as image:
            assert image.format == "PNG" and image.size == (800, 450), (png, image.size)

    # the default place: trt-artifacts/ under pytest's basetemp
    default = repo.runpytest()
    match = re.search(r"failure artifacts in (\S+): ", default.stdout.str())
    assert match and "/trt-artifacts/test_a/test_scale/fp32" in match.group(1) and os.path.isdir(match.group(1))


def test_unwritable_artifacts_dir_is_named_and_the_failure_still_reported(repo):
    repo.makepyfile(test_a=ONES_TEST)
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    _rescale(repo, 2.01)
    (repo.path / "blocker").write_text("a file, not a directory")
    result = repo.runpytest("--trt-artifacts", "blocker")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*output 'y': values differ*",
                                 f"*failure artifacts could not be written to {repo.path / 'blocker'}/test_a/test_scale/fp32: *"])
    assert "Traceback" not in result.stdout.str()


def test_failure_artifacts_of_an_engine_comparison(repo, shifted):
    repo.makepyfile(test_a=ONES_TEST)
    done = shifted(5e-3, "--update-golden", "--trt-artifacts", "art")
    assert done.returncode == 1, done.stdout
    folder = repo.path / "art" / "test_a" / "test_scale" / "fp32"
    assert sorted(p.name for p in folder.iterdir() if p.suffix != ".png") == [
        "engine.npz", "inputs.npz", "reference.npz", "report.json"]
    report = json.loads((folder / "report.json").read_text())
    assert report["backend"]["backend"] == "shifted"
    engine = report["comparisons"]["engine-vs-reference"]["outputs"][0]
    assert engine["max_abs"]["value"] == pytest.approx(5e-3, rel=1e-3)


# ------------------------------------------------------------------------------------------- JUnit

def test_junit_properties_per_test(repo):
    repo.makepyfile(test_a=ONES_TEST)
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    _rescale(repo, 2.0005)
    repo.runpytest("--junitxml", "junit.xml").assert_outcomes(passed=1)
    case = next(ET.parse(repo.path / "junit.xml").iter("testcase"))
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["trt_precision"] == "fp32" and props["trt_backend"] == "none"
    assert props["trt_golden"] == "model changed"  # within tolerance, but recorded from the model before the rescale
    assert props["trt_worst_output"] == "y" and props["trt_comparison"] == "reference vs golden"
    assert float(props["trt_max_abs"]) == pytest.approx(5e-4, rel=1e-3)
    assert float(props["trt_budget"]) == pytest.approx(0.5, rel=1e-3)
    assert float(props["trt_atol"]) == 1e-3 and float(props["trt_rtol"]) == 0.0
    assert props["trt_engine_skipped"].startswith("no TensorRT backend can run here")
    assert float(props["trt[reference vs golden][y].max_abs"]) == pytest.approx(5e-4, rel=1e-3)


def test_junit_properties_only_with_junitxml_and_from_xdist_workers(repo):
    repo.makepyfile(test_a=ONES_TEST)
    repo.makeconftest(textwrap.dedent("""
        def pytest_runtest_logreport(report):
            if report.when == "teardown":
                with open("properties.txt", "a") as f:
                    f.write(repr(sorted(name for name, _ in report.user_properties)) + "\\n")
    """))
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    assert (repo.path / "properties.txt").read_text() == "[]\n"  # no --junitxml: nothing added
    (repo.path / "properties.txt").unlink()
    repo.runpytest("-n", "2", "--junitxml", "junit.xml").assert_outcomes(passed=1)
    props = {p.get("name"): p.get("value") for p in ET.parse(repo.path / "junit.xml").iter("property")}
    assert props["trt_golden"] == "unchanged" and props["trt_worst_output"] == "y"
    assert "trt_precision" in (repo.path / "properties.txt").read_text()


def test_junit_engine_cache_properties(repo, shifted):
    repo.makepyfile(test_a=ONES_TEST)
    done = shifted(1e-6, "--update-golden", "--junitxml", "j.xml")
    assert done.returncode == 0, done.stdout
    props = {p.get("name"): p.get("value") for p in ET.parse(repo.path / "j.xml").iter("property")}
    assert props["trt_backend"] == "shifted 1e-06" and props["trt_golden"] == "created"
    assert "trt_engine_cache" not in props  # this backend builds nothing; TensorRT ones report hit/miss


# ------------------------------------------------------------------------------- tolerance suggestion

def test_suggested_tolerances_pasted_into_the_marker_pass(repo):
    repo.makepyfile(test_a=textwrap.dedent("""
        import pytest
        @pytest.mark.trt_compare(model="models/scale.onnx", atol=1e-6, rtol=1e-6, precision=["fp32", "fp16"])
        def test_scale(trt_compare):
            trt_compare()
    """))
    repo.runpytest("--update-golden").assert_outcomes(passed=2)
    _rescale(repo, 2.002)
    repo.runpytest().assert_outcomes(failed=2)
    suggested = repo.runpytest("--trt-suggest-tolerances")
    suggested.assert_outcomes(passed=2)
    out = suggested.stdout.str()
    lines = out[out.index("pytest-trt tolerance suggestions"):].splitlines()
    assert lines[2] == "test_a.py::test_scale", lines
    paste = lines[3].strip()
    assert paste.startswith("tolerances={'fp32': {'y': {'atol': ") and paste.endswith("'rtol': 1e-06}}}"), paste
    repo.makepyfile(test_a=textwrap.dedent(f"""
        import pytest
        @pytest.mark.trt_compare(model="models/scale.onnx", atol=1e-6, rtol=1e-6, precision=["fp32", "fp16"],
                                 {paste})
        def test_scale(trt_compare):
            trt_compare()
    """))
    repo.runpytest().assert_outcomes(passed=2)
    # and the suggestion is tight: a third of it fails
    atol = float(re.search(r"'atol': ([0-9.e+-]+)", paste).group(1))
    repo.makepyfile(test_a=textwrap.dedent(f"""
        import pytest
        @pytest.mark.trt_compare(model="models/scale.onnx", atol={atol / 3!r}, rtol=1e-6)
        def test_scale(trt_compare):
            trt_compare()
    """))
    repo.runpytest().assert_outcomes(failed=1)


def test_suggestion_mode_still_fails_what_no_tolerance_fixes(pytester):
    two_io_model(pytester.path / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="two.onnx")
        def test_x(trt_compare):
            trt_compare()
    """)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    golden = next((pytester.path / "golden").rglob("reference.npz"))
    data = dict(np.load(golden))
    data["i"] = data["i"] + 1  # the golden of the integer output now differs: exact outputs have no tolerance
    import pytest_trt.goldens.store as g

    meta = json.loads(golden.with_suffix(".json").read_text())
    g.write_golden(golden.parent, "reference", data, {k: v for k, v in meta.items() if k != "outputs"})
    result = pytester.runpytest("--trt-suggest-tolerances")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*no tolerance fixes [[]fp32] reference vs golden: output 'i': exact (integer/bool) "
                                 "output differs"])


# ---------------------------------------------------------------------------------- build progress

BUILD_TEST = """
    import pytest_trt

    def test_before():  # its progress mark is on the line when the build starts
        pass

    def test_build(tmp_path):
        print("user output")
        plan = pytest_trt.build_engine("{model}", backend="tensorrt_rtx", cache_dir=tmp_path)
        assert len(plan) > 1000
"""


@pytest.mark.parametrize("args", [(), ("-s",), ("-q",), ("-v",)])
def test_build_progress_lines_are_whole_lines(pytester, args):
    pytest.importorskip("tensorrt_rtx")
    model = scale_model(pytester.path / "m.onnx", dims=(2, 4))
    pytester.makeini(INI)
    pytester.makepyfile(test_a=BUILD_TEST.format(model=model), test_b="def test_other():\n    pass\n")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=3)
    lines = result.stdout.lines
    start = [i for i, line in enumerate(lines) if line.startswith("pytest-trt: building TensorRT-RTX ")]
    end = [i for i, line in enumerate(lines) if re.fullmatch(
        r"pytest-trt: built TensorRT-RTX [\d.]+ engine for m\.onnx \(no precision flags, TF32 off\) in \d+\.\d s", line)]
    assert len(start) == 1 and len(end) == 1 and start[0] < end[0], lines
    assert all("pytest-trt:" not in line or line.startswith("pytest-trt:") for line in lines), lines
    if args == ("-s",):
        assert "user output" in result.stdout.str()


def test_no_progress_lines_from_xdist_workers(pytester):
    pytest.importorskip("tensorrt_rtx")
    pytest.importorskip("xdist")
    model = scale_model(pytester.path / "m.onnx", dims=(2, 4))
    pytester.makeini(INI)
    pytester.makepyfile(test_a=BUILD_TEST.format(model=model),
                        test_b=BUILD_TEST.format(model=model).replace("test_build", "test_build_b"))
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=4)
    assert "pytest-trt: build" not in result.stdout.str() + result.stderr.str()
