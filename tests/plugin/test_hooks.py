"""Plugin behaviour through pytester: real pytest runs, real ONNX files, real onnxruntime."""

import pytest

from models import scale_model, two_io_model

from shared import INI


@pytest.fixture
def repo(repo):
    """A small model repo: models/, a conftest-free test dir, goldens under golden/."""
    scale_model(repo.path / "models" / "scale.onnx", dims=("batch", 4))
    two_io_model(repo.path / "models" / "two.onnx")
    return repo


def snapshot(root):
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_marker_registered_under_strict_markers(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare):
            trt_compare()
    """)
    result = repo.runpytest("--strict-markers", "--update-golden")
    result.assert_outcomes(passed=1)
    result = repo.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.trt_compare(model=None, *, atol=None, rtol=None, precision='fp32'*"])


@pytest.mark.parametrize("marker, message", [
    ('model="models/two.onnx", atoll=1e-3',
     "test_a.py::test_x: trt_compare got unknown argument 'atoll' (did you mean 'atol'?); valid arguments are: model, atol,*"),
    ('model="models/two.onnx", atol=-1', "test_a.py::test_x: trt_compare atol=-1 is not a non-negative number; use e.g. atol=1e-3"),
    ('model="models/two.onnx", precision="fp64"', "test_a.py::test_x: trt_compare precision 'fp64' is unknown (did you mean 'fp16'?); valid precisions are: fp32, tf32, fp16, bf16, int8, fp8"),
    ('model="models/missing.onnx"', "test_a.py::test_x: trt_compare model 'models/missing.onnx' not found (looked at *"),
])
def test_marker_errors_are_errors_of_their_own_test(repo, marker, message):
    repo.makepyfile(test_a=f"""
        import pytest
        @pytest.mark.trt_compare({marker})
        def test_x(trt_compare):
            trt_compare()
    """)
    result = repo.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_x*", message])
    assert "Traceback" not in result.stdout.str()


def test_marker_without_fixture_is_an_error(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x():
            pass
    """)
    result = repo.runpytest()
    result.stdout.fnmatch_lines(["*test_a.py::test_x: has @pytest.mark.trt_compare but does not use the trt_compare fixture*"])


def test_precision_list_parametrizes_with_ids(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.parametrize("n", [2, 3])
        @pytest.mark.trt_compare(model="models/scale.onnx", precision=["fp32", "fp16"])
        def test_x(trt_compare, trt_precision, n):
            assert trt_precision in ("fp32", "fp16")
            trt_compare(shapes={"x": (n, 4)})
        @pytest.mark.trt_compare(model="models/two.onnx", precision="fp16")
        def test_single(trt_compare, trt_precision):
            assert trt_compare.precision == trt_precision == "fp16"
            trt_compare()
    """)
    result = repo.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["test_a.py::test_x[fp32-2]", "test_a.py::test_x[fp32-3]", "test_a.py::test_x[fp16-2]",
                                 "test_a.py::test_x[fp16-3]", "test_a.py::test_single"])
    result = repo.runpytest("--update-golden", "-v")
    result.assert_outcomes(passed=5)
    # the reference golden is shared by the precisions: one folder per remaining parameter set
    folders = sorted(p.parent.name for p in (repo.path / "golden" / "test_a").rglob("reference.npz"))
    assert folders == ["test_single", "test_x[2]", "test_x[3]"]


def test_one_fixture_object_serves_each_running_test(repo):
    """trt_compare is session-scoped (cheap per test) but checks the running test: its precision, its goldens,
    pytest's usual test order, also when called from a function-scoped fixture."""
    repo.makeconftest("""
        import pytest
        HELD = []
        @pytest.fixture
        def checked(trt_compare):
            HELD.append(trt_compare)
            return trt_compare()
        def pytest_sessionfinish(session):
            try:
                HELD[0]()
            except pytest.UsageError as exc:
                print("AFTER TESTS:", exc)
    """)
    repo.makepyfile(test_a="""
        import pytest
        SEEN = []
        @pytest.mark.trt_compare(model="models/two.onnx", precision=["fp32", "fp16"])
        def test_a(trt_compare, trt_precision):
            SEEN.append(("a", trt_compare.precision))
            assert trt_compare.precision == trt_precision
            assert trt_compare().precision == trt_precision
        def test_plain():
            SEEN.append(("plain", None))
        @pytest.mark.trt_compare(model="models/scale.onnx", shapes={"x": (2, 4)}, precision=["fp32", "fp16"])
        def test_b(checked, trt_compare):
            SEEN.append(("b", trt_compare.precision))
            assert checked.precision == trt_compare.precision and checked.passed
        def test_order():
            assert SEEN == [("a", "fp32"), ("a", "fp16"), ("plain", None), ("b", "fp32"), ("b", "fp16")]
    """)
    result = repo.runpytest_subprocess("--update-golden", "-s")  # in-process, this test would be the running one
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["*AFTER TESTS: trt_compare was used while no test was running; call it from a test "
                                 "or a function-scoped fixture"])
    folders = sorted(p.parent.name for p in (repo.path / "golden" / "test_a").rglob("reference.npz"))
    assert folders == ["test_a", "test_b"]


def test_goldens_of_tests_in_nested_classes(repo):
    """Class names are golden folders (outer first), and a failure's regenerate command names the class path."""
    from pytest_trt.goldens.store import location_parts

    repo.makepyfile(test_a="""
        import pytest
        class TestOuter:
            class TestInner:
                @pytest.mark.parametrize("n", [2])
                @pytest.mark.trt_compare(model="models/scale.onnx")
                def test_x(self, trt_compare, n):
                    trt_compare(shapes={"x": (n, 4)})
    """)
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    folder = repo.path.joinpath("golden", *location_parts(["test_a"], ["TestOuter", "TestInner"], "test_x[2]"))
    assert (folder / "reference.npz").exists()
    (folder / "reference.npz").unlink()
    (folder / "reference.json").unlink()
    result = repo.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*create it with: pytest --update-golden 'test_a.py::TestOuter::TestInner::test_x[[]2]'"])


def test_golden_cycle_fail_update_pass_change_fail(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/scale.onnx", shapes={"x": (3, 4)})
        def test_x(trt_compare):
            trt_compare()
    """)
    result = repo.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*no reference golden for this test at golden/test_a/test_x/reference.npz; create it with: pytest --update-golden test_a.py::test_x*"])
    result = repo.runpytest("--update-golden")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*goldens in *golden: 1 created*", "*created: test_a/test_x/reference.npz"])
    before = snapshot(repo.path / "golden")
    result = repo.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*goldens in *golden: 1 unchanged*"])
    assert snapshot(repo.path / "golden") == before  # a passing check writes nothing
    result = repo.runpytest("--update-golden")  # matching goldens are left untouched even when updating
    assert snapshot(repo.path / "golden") == before
    scale_model(repo.path / "models" / "scale.onnx", dims=("batch", 4), factor=2.001)  # the model changes
    result = repo.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*reference (onnxruntime) vs golden test_a/test_x/reference.npz: 1 of 1 outputs differ*",
        "*output 'y': values differ*", "*mismatched elements: * / 12 (*%)*",
        "*if the change is intended, regenerate it with: pytest --update-golden test_a.py::test_x*"])
    result = repo.runpytest("--update-golden")
    result.stdout.fnmatch_lines(["*1 updated*"])
    repo.runpytest().assert_outcomes(passed=1)


def test_changed_inputs_are_named(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx", seed=SEED)
        def test_x(trt_compare):
            trt_compare()
    """.replace("SEED", "0"))
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    # another length, so a bytecode cache written in the same second cannot be mistaken for this file
    (repo.path / "test_a.py").write_text((repo.path / "test_a.py").read_text().replace("seed=0", "seed=17"))
    result = repo.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*reference golden golden/test_a/test_x/reference.npz was recorded for different inputs "
                                 "(input 'a' has other values; input 'b' has other values; seed was 0, now 17)*"])


def test_collision_free_and_contained_ids(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.parametrize("v", ["1.0", "1_0", "1-0", "../../escape", "/abs", "A", "a"])
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare, v):
            trt_compare(seed=len(v))
    """)
    repo.runpytest("--update-golden").assert_outcomes(passed=7)
    files = [p for p in repo.path.rglob("reference.npz")]
    assert len(files) == 7
    assert all(p.resolve().is_relative_to((repo.path / "golden").resolve()) for p in files)
    names = {p.parent.name for p in files}
    assert {"test_x[1.0]", "test_x[1_0]", "test_x[1-0]"} <= names
    repo.runpytest().assert_outcomes(passed=7)


def test_engine_side_skipped_with_reason_and_require(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare):
            result = trt_compare()
            assert result.engine is None and result.engine_skipped.startswith("no TensorRT backend can run here: ")
    """)
    result = repo.runpytest("--update-golden")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*engine under test: auto (chosen at the first check*",
                                 "*engine side skipped in 1 check: no TensorRT backend can run here: *"])
    result = repo.runpytest("--trt-require")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the engine side is required (--trt-require) but did not run: no TensorRT backend*"])
    repo.makeini(INI + "trt_require = true\n")
    repo.runpytest().assert_outcomes(failed=1)


def test_header_names_the_comparator_path(repo, monkeypatch):
    from pytest_trt.comparison.compare import comparator_path

    repo.makepyfile(test_a="def test_x():\n    pass\n")
    repo.runpytest_subprocess().stdout.fnmatch_lines([f"*; comparator: {comparator_path()}*"])
    monkeypatch.setenv("PYTEST_TRT_COMPARE", "numpy")
    repo.runpytest_subprocess().stdout.fnmatch_lines(["*; comparator: numpy (PYTEST_TRT_COMPARE=numpy)"])


def test_onnxruntime_as_engine_under_test(repo):
    repo.makepyfile(test_a="""
        import numpy as np, pytest
        @pytest.mark.trt_compare(model="models/two.onnx", precision=["fp32", "fp16"])
        def test_x(trt_compare, trt_precision):
            result = trt_compare()
            if trt_precision == "fp32":
                assert result.engine_vs_reference.passed and result.backend["backend"] == "onnxruntime"
                assert np.array_equal(result.engine["i"], result.reference["i"])
            else:  # a CPU preview: the model converted to fp16, labelled as such
                assert result.preview and "CPU preview" in result.backend["preview"]
                assert result.engine_skipped is None and result.engine_vs_reference.passed
    """)
    result = repo.runpytest("--trt-backend", "onnxruntime", "--update-golden", "--trt-summary=full")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*fp16*onnxruntime * preview*", "*onnxruntime fp16 (CPU preview)*"])
    assert (repo.path / "golden/test_a/test_x/engine-onnxruntime-fp32.npz").exists()
    result.stdout.fnmatch_lines(["*engine checks run: 1 (onnxruntime fp32)*"])
    repo.runpytest("--trt-backend", "onnxruntime").assert_outcomes(passed=2)


def test_unknown_backend_is_a_usage_error(repo):
    result = repo.runpytest("--trt-backend", "tensorrtt")
    result.stderr.fnmatch_lines(["*--trt-backend 'tensorrtt' is unknown; use auto, none, or one of: onnxruntime, tensorrt, tensorrt_rtx*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_ini_and_cli_golden_dir(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare):
            trt_compare()
    """)
    repo.makeini(INI + "trt_golden_dir = refs\ntrt_update_golden = true\n")
    repo.runpytest().assert_outcomes(passed=1)
    assert (repo.path / "refs/test_a/test_x/reference.npz").exists()
    repo.runpytest("--golden-dir", "other").assert_outcomes(passed=1)
    assert (repo.path / "other/test_a/test_x/reference.npz").exists()


def test_model_from_fixture_or_call(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.fixture
        def trt_model():
            return "models/two.onnx"
        def test_fixture(trt_compare):
            trt_compare()
        def test_call(trt_compare):
            trt_compare(model="models/scale.onnx", shapes={"x": (2, 4)})
        def test_none(trt_compare):
            trt_compare(model=None)
    """)
    result = repo.runpytest("--update-golden")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_a.py::test_none: trt_compare has no model; pass model= to the marker*"])


def test_user_input_errors_are_one_sentence(repo):
    repo.makepyfile(test_a="""
        import numpy as np, pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare):
            trt_compare(inputs={"a": np.zeros((2, 3)), "b": np.zeros((2, 3), np.int64)})
        @pytest.mark.trt_compare(model="models/scale.onnx")
        def test_dyn(trt_compare):
            trt_compare()
        @pytest.mark.trt_compare(model="models/two.onnx", outputs=["nope"])
        def test_outputs(trt_compare):
            trt_compare()
    """)
    result = repo.runpytest()
    result.assert_outcomes(failed=3)
    assert "During handling" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines([
        "*test_a.py::test_x: input 'a' has dtype float64 but the model expects float32; convert it with .astype(np.float32)",
        "*test_a.py::test_dyn: input 'x' dim 0 ('batch') is dynamic and no shape was given; pass shapes={'x': (<size>, 4)} (a marker or function argument)",
        "*test_a.py::test_outputs: trt_compare outputs names 'nope', which is not an output of two.onnx; its outputs are: s (float32[[]2,3]), i (int64[[]2,3])",
    ])


def test_corrupt_golden_fails_with_file_and_fix(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare):
            trt_compare()
    """)
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    npz = repo.path / "golden/test_a/test_x/reference.npz"
    npz.write_bytes(npz.read_bytes()[:100])
    result = repo.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*golden*reference.npz' is corrupt or truncated*regenerate it with: pytest --update-golden test_a.py::test_x"])
    result = repo.runpytest("--update-golden")
    result.stdout.fnmatch_lines(["*1 updated*"])
    repo.runpytest().assert_outcomes(passed=1)


def test_unused_goldens_reported_never_deleted(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare):
            trt_compare()
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_gone(trt_compare):
            trt_compare()
    """)
    repo.runpytest("--update-golden").assert_outcomes(passed=2)
    (repo.path / "test_a.py").write_text((repo.path / "test_a.py").read_text().split("@pytest.mark.trt_compare(model=\"models/two.onnx\")\ndef test_gone")[0])
    result = repo.runpytest("--update-golden")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 unchanged, 1 unused*", "*unused: test_a/test_gone/ (no collected test uses it*"])
    assert (repo.path / "golden/test_a/test_gone/reference.npz").exists()


def test_help_lists_every_option(repo):
    result = repo.runpytest("--help")
    for flag in ("--trt-engine-dir=DIR", "--update-golden", "--golden-dir=DIR", "--trt-backend=NAME", "--trt-require"):
        result.stdout.fnmatch_lines([f"*{flag}*"])
    for ini in ("trt_engine_dir", "trt_update_golden", "trt_golden_dir", "trt_backend", "trt_require"):
        result.stdout.fnmatch_lines([f"  {ini} *"])
