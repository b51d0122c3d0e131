"""The eager public API, and what importing pytest_trt costs."""
import subprocess
import sys

import numpy as np

import pytest_trt
from models import scale_model, two_io_model


def test_import_loads_no_heavy_modules():
    code = ("import sys, pytest_trt; heavy = [m for m in ('numpy', 'onnx', 'onnxruntime', 'tensorrt', 'tensorrt_rtx', "
            "'cuda') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


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
