"""pytest-trt: numerical regression tests for TensorRT engines against ONNX Runtime and goldens.

Eager API (each function does its work when called and returns plain data)::

    from pytest_trt import make_inputs, run_onnxruntime, compare, assert_close
    inputs = make_inputs("model.onnx", shapes={"x": (4, 16)}, seed=0)
    outputs = run_onnxruntime("model.onnx", inputs)
    report = compare(outputs, expected, atol=1e-4, rtol=1e-3)
    plan = build_engine("model.onnx", precision="fp16", shapes={"x": (4, 16)}, cache_dir=".trt-cache")
    engine_outputs = run_engine(plan, inputs)

Importing this package loads neither numpy nor onnxruntime nor tensorrt: names resolve on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "make_inputs": ("core.generated_inputs", "make_inputs"),
    "compare": ("comparison.compare", "compare"),
    "assert_close": ("comparison.compare", "assert_close"),
    "ComparisonReport": ("comparison.report", "ComparisonReport"),
    "OutputReport": ("comparison.report", "OutputReport"),
    "DEFAULT_TOLERANCES": ("core.tolerance", "DEFAULT_TOLERANCES"),
    "PRECISIONS": ("core.tolerance", "PRECISIONS"),
    "Tolerance": ("core.tolerance", "Tolerance"),
    "load_model_info": ("core.model", "load_model_info"),
    "ModelInfo": ("core.model", "ModelInfo"),
    "CheckResult": ("core.check", "CheckResult"),
    "get_backend": ("backends.registry", "get_backend"),
    "known_backends": ("backends.registry", "known_backends"),
    "TrtCompareError": ("errors", "TrtCompareError"),
    "TrtDriftWarning": ("errors", "TrtDriftWarning"),
    "TrtPrecisionWarning": ("errors", "TrtPrecisionWarning"),
    "build_engine": ("backends.tensorrt.eager", "build_engine"),
    "localize": ("core.localize", "localize"),
    "Localization": ("core.localization", "Localization"),
    "run_engine": ("backends.tensorrt.eager", "run_engine"),
    "engine_census": ("backends.tensorrt.eager", "engine_census"),
}
__all__ = ["__version__", "run_onnxruntime", *_LAZY]


def run_onnxruntime(model, inputs, providers=("CPUExecutionProvider",)) -> dict:
    """Run ``model`` (a path) with onnxruntime on ``inputs`` (dict, array, or .npz path); ``{name: array}``.

    The session is cached per model and providers, so repeated calls are cheap.
    """
    from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend
    from pytest_trt.core.inputs import prepare_user_inputs
    from pytest_trt.core.model import load_model_info

    info = load_model_info(model)
    return OnnxRuntimeBackend(providers).run(info, prepare_user_inputs(inputs, info))


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pytest_trt' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
