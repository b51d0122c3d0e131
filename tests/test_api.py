"""The eager public API, and what importing pytest_trt costs."""
import subprocess
import sys

import numpy as np
import pytest

import pytest_trt
from models import scale_model, two_io_model


def test_import_loads_no_heavy_modules():
    code = ("import sys, pytest_trt; heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'tensorrt', 'tensorrt_rtx', "
            "'cuda') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_pytest_session_without_checks_loads_no_heavy_modules(pytester, monkeypatch):
    """The plugin loads in every pytest session of the environment: projects without trt_compare
    tests must not pay for numpy, onnxruntime or tensorrt (numpy alone is ~80 ms)."""
    pytester.makeconftest("""
        import sys
        def pytest_unconfigure(config):
            heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'tensorrt', 'tensorrt_rtx', 'cuda', 'pytest_trt.backends.tensorrt.plan')
                     if m in sys.modules]
            open('heavy.txt', 'w').write(repr(heavy))
    """)
    pytester.makepyfile("def test_x():\n    pass\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")   # ours alone, no other plugin's imports
    pytester.runpytest_subprocess("-p", "pytest_trt.plugin.hooks", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert (pytester.path / "heavy.txt").read_text() == "[]"


def test_checks_where_no_engine_can_run_load_no_tensorrt_adapter(pytester, monkeypatch):
    """--trt-backend auto on a machine without TensorRT, cuda-python or a GPU (most CI) decides from module
    lookups: neither the TensorRT adapter nor its planning module is imported, and the reason is still given."""
    from pytest_trt.backends.registry import AUTO_ORDER
    from pytest_trt.backends.tensorrt.probe import machine_reason

    reasons = [machine_reason(name) for name in AUTO_ORDER]
    if not all(reasons):
        pytest.skip("a TensorRT backend may run on this machine")
    two_io_model(pytester.path / "two.onnx")
    pytester.makeconftest("""
        import sys
        def pytest_unconfigure(config):
            loaded = [m for m in ('pytest_trt.backends.tensorrt.backend', 'pytest_trt.backends.tensorrt.plan', 'tensorrt', 'tensorrt_rtx')
                      if m in sys.modules]
            open('loaded.txt', 'w').write(repr(loaded))
    """)
    pytester.makepyfile("""
        import pytest
        @pytest.mark.trt_compare(model="two.onnx")
        def test_x(trt_compare):
            assert trt_compare().engine_skipped
    """)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = pytester.runpytest_subprocess("-p", "pytest_trt.plugin.hooks", "-p", "no:cacheprovider", "--update-golden")
    result.assert_outcomes(passed=1)
    from pytest_trt.backends.registry import select_engine_backend

    assert f"engine side skipped in 1 check: {select_engine_backend('auto')[1]}; " in result.stdout.str()
    assert (pytester.path / "loaded.txt").read_text() == "[]"


def test_eager_functions(tmp_path):
    model = scale_model(tmp_path / "m.onnx", dims=("batch", 4), factor=3.0)
    inputs = pytest_trt.make_inputs(model, shapes={"x": (2, 4)}, seed=1)
    outputs = pytest_trt.run_onnxruntime(model, inputs)
    assert np.allclose(outputs["y"], inputs["x"] * 3)
    report = pytest_trt.compare(outputs, {"y": inputs["x"] * 3}, atol=1e-6, rtol=0)
    assert report.passed and report["y"].mismatches == 0
    assert pytest_trt.assert_close(outputs["y"], inputs["x"] * 3).passed
    try:
        pytest_trt.assert_close(outputs["y"], inputs["x"] * 3 + 1, atol=1e-3, rtol=0)
    except AssertionError as exc:
        assert "mismatched elements: 8 / 8 (100%)" in str(exc)
    else:
        raise AssertionError("assert_close did not raise")
    assert set(pytest_trt.DEFAULT_TOLERANCES) == set(pytest_trt.PRECISIONS)


def test_run_onnxruntime_reuses_sessions(tmp_path):
    from pytest_trt.backends import onnxruntime as ort_backend

    model = two_io_model(tmp_path / "m.onnx")
    inputs = pytest_trt.make_inputs(model)
    pytest_trt.run_onnxruntime(model, inputs)
    session = ort_backend.session_for(pytest_trt.load_model_info(model))
    pytest_trt.run_onnxruntime(model, inputs)
    assert ort_backend.session_for(pytest_trt.load_model_info(model)) is session
