"""Messages that fit where they are read: the eager API speaks of its arguments, skip reasons name the extra
that installs what is missing and are stated in full once per session, and a machine that cannot run
plans says so instead of blaming the plan.

Real components: real ONNX models, onnxruntime, pytester runs, a subprocess without site-packages, and
TensorRT-RTX building a real plan where it is installed (running it needs a GPU and cuda-python).
"""
import importlib.util
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from models import scale_model
from pytest_trt import assert_close, build_engine, compare, run_engine
from pytest_trt.backends.registry import select_engine_backend, short_reason
from pytest_trt.backends.tensorrt.probe import machine_reason
from pytest_trt.errors import BackendError, SpecError

from shared import INI, ROOT


def _cuda_python() -> bool:
    return importlib.util.find_spec("cuda") is not None and (
        importlib.util.find_spec("cuda.bindings") is not None or importlib.util.find_spec("cuda.cudart") is not None)


# ------------------------------------------------------------------------------ tolerance sources

def test_eager_compare_names_its_arguments_not_a_marker():
    a, b = np.zeros(4, np.float32), np.full(4, 1e-3, np.float32)
    with pytest.raises(AssertionError) as info:
        assert_close(a, b, atol=1e-4, tolerances={"output": {"rtol": 0.0}})
    text = str(info.value)
    assert "tolerance: atol=0.0001 (argument), rtol=0 (tolerances['output'])" in text
    assert "marker" not in text
    assert "atol=0.0001 (argument)" in compare(a, b, atol=1e-4).message
    with pytest.raises(SpecError) as info:
        compare(a, b, tolerances={"atol": 1e-3})
    assert str(info.value) == ("tolerances has a bare field 'atol'; pass test-wide values as atol=... beside "
                               "tolerances= and use tolerances for per-precision or per-output sections")


def test_plugin_failure_still_names_the_marker(pytester):
    scale_model(pytester.path / "scale.onnx", dims=(2, 4), factor=2.0)
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import numpy as np
        import pytest
        @pytest.mark.trt_compare(model="scale.onnx", atol=1e-4, rtol=0.0)
        def test_x(trt_compare):
            trt_compare(inputs={"x": np.ones((2, 4), np.float32)})
    """)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    scale_model(pytester.path / "scale.onnx", dims=(2, 4), factor=2.01)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tolerance: atol=0.0001 (marker), rtol=0 (marker)*"])


# ------------------------------------------------------------------------------ skip reasons

def test_skip_reason_names_the_extra_of_the_installed_flavor():
    """The real installed state: TensorRT-RTX without cuda-python asks for [rtx], not [trt]."""
    rtx, trt = (importlib.util.find_spec(m) is not None for m in ("tensorrt_rtx", "tensorrt"))
    if not rtx or trt or _cuda_python():
        pytest.skip("needs TensorRT-RTX installed without TensorRT and cuda-python (the test extras on Linux x86-64 without cuda-python)")
    assert machine_reason("tensorrt_rtx") == "tensorrt_rtx is installed but cuda-python is not (pip install 'pytest-trt[rtx]')"
    assert machine_reason("tensorrt") == "tensorrt is not installed (pip install 'pytest-trt[trt]')"
    assert select_engine_backend("auto") == (
        None, "no TensorRT backend can run here: tensorrt_rtx is installed but cuda-python is not "
              "(pip install 'pytest-trt[rtx]')")


def test_skip_reason_without_any_tensorrt_names_both_extras(tmp_path):
    """A Python without site-packages (python -S) has neither TensorRT flavor: a real lookup, no mocks."""
    code = "from pytest_trt.backends.registry import select_engine_backend; print(select_engine_backend('auto')[1])"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True).stdout.strip()
    assert out == ("no TensorRT backend can run here: neither tensorrt nor tensorrt_rtx is installed "
                   "(pip install 'pytest-trt[trt]', or 'pytest-trt[rtx]' for TensorRT-RTX)")
    assert short_reason(out) == "no TensorRT backend can run here: neither tensorrt nor tensorrt_rtx is installed"


def test_skip_reason_once_in_the_summary_short_in_junit(pytester):
    reason = select_engine_backend("auto")[1]
    if reason is None:
        pytest.skip("a TensorRT backend can run here")
    scale_model(pytester.path / "scale.onnx", dims=(2, 4))
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="scale.onnx", precision=["fp32", "fp16"])
        def test_x(trt_compare):
            trt_compare()
    """)
    result = pytester.runpytest("--update-golden", "--junitxml", "j.xml")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert out.count(reason) == 1 and f"engine side skipped in 2 checks: {reason}; " in out
    skipped = [p.get("value") for p in ET.parse(pytester.path / "j.xml").iter("property")
               if p.get("name") == "trt_engine_skipped"]
    assert skipped == [short_reason(reason)] * 2 and "pip install" not in skipped[0]


# ------------------------------------------------------------------------------ run_engine

@pytest.fixture(scope="module")
def rtx_plan(tmp_path_factory):
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed (pip install 'pytest-trt[rtx]')")
    if machine_reason("tensorrt_rtx") is None:
        pytest.skip("a GPU and cuda-python are here: TensorRT-RTX plans run")
    model = scale_model(tmp_path_factory.mktemp("m") / "m.onnx", dims=(2, 4))
    return build_engine(model, backend="tensorrt_rtx")  # builds on CPU


def test_run_engine_without_gpu_or_cuda_python_says_so(rtx_plan):
    with pytest.raises(BackendError) as info:
        run_engine(rtx_plan, {"x": np.ones((2, 4), np.float32)}, backend="tensorrt_rtx")
    text = str(info.value)
    assert "deserialize" not in text and "engine cache" not in text
    if not _cuda_python():
        assert text == ("run_engine cannot run a tensorrt_rtx plan on this machine: tensorrt_rtx is installed but "
                        "cuda-python is not (pip install 'pytest-trt[rtx]')")
    else:
        assert text == ("run_engine cannot run a tensorrt_rtx plan on this machine: tensorrt_rtx is installed but "
                        "no CUDA GPU is visible; run the plan on a machine with a GPU it supports")


def test_deserializing_where_cuda_cannot_run_blames_the_machine_not_the_plan(rtx_plan):
    """The adapter's Engine, asked directly (as the plugin does once a backend is chosen): TensorRT itself
    fails on CUDA here, and the sentence says the machine cannot run plans, not that the plan is stale."""
    import tensorrt_rtx

    from pytest_trt.backends.tensorrt.runtime import Engine

    with pytest.raises(BackendError) as info:
        Engine(tensorrt_rtx, rtx_plan)
    text = str(info.value)
    assert text.startswith("TensorRT cannot use CUDA on this machine (cudaError "), text
    assert text.endswith("), so no plan can run here; run it on a machine with an NVIDIA GPU and a driver recent "
                         "enough for this TensorRT")
    assert "another TensorRT version" not in text
