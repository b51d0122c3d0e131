"""The golden cycle under pytest-xdist: per-worker state is right and the summary is merged."""
import pytest

from models import two_io_model

from shared import INI


@pytest.mark.slow
def test_golden_cycle_under_xdist(pytester):
    two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.parametrize("seed", range(6))
        @pytest.mark.trt_compare(model="models/two.onnx", precision=["fp32", "fp16"])
        def test_x(trt_compare, seed):
            trt_compare(seed=seed)
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_gone(trt_compare):
            trt_compare()
    """)
    result = pytester.runpytest_subprocess("-n", "2", "--update-golden")
    result.assert_outcomes(passed=13)
    # 7 reference goldens, each shared by [fp32] and [fp16] that may run on different workers
    result.stdout.fnmatch_lines(["*goldens in *golden: 7 created*"])
    assert len(list((pytester.path / "golden").rglob("reference.npz"))) == 7
    assert not list((pytester.path / "golden").rglob("*.tmp"))
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=13)
    result.stdout.fnmatch_lines(["*goldens in *golden: 7 unchanged*", "*engine side skipped in 13 checks*"])
    (pytester.path / "test_a.py").write_text((pytester.path / "test_a.py").read_text().replace("def test_gone", "def test_renamed"))
    result = pytester.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=12, failed=1)
    result.stdout.fnmatch_lines(["*6 unchanged, 1 missing, 1 unused*", "*unused: test_a/test_gone/*"])
