"""onnxruntime as the engine under test at fp16/bf16: a CPU preview of the model converted to that precision, with
every reduced tensor rounded where it is produced (``convert.emulate``), its probe, and the labels that say
"preview" wherever its results are reported."""
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from pytest_trt.backends.convert import convert, emulate
from pytest_trt.backends.onnxruntime import PREVIEW_NOTE, PREVIEWS, OnnxRuntimeBackend, OnnxRuntimeProbe
from pytest_trt.backends.registry import get_backend
from pytest_trt.core.check import CheckContext, run_check
from pytest_trt.core.model import load_model_info
from pytest_trt.core.spec import parse_marker
from pytest_trt.errors import BackendError

from models import overflow_model

MLP = Path(__file__).resolve().parents[2] / "examples" / "models" / "mlp.onnx"   # Gemm 16 -> 32, Relu, Gemm -> 8


@pytest.fixture
def overflow(tmp_path):
    return overflow_model(tmp_path / "overflow.onnx")


def _x(seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (4, 64)).astype(np.float32)


def _ort(model, inputs, outputs=None):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(outputs, inputs)


def _fetch(info, precision, inputs, names):
    probe = OnnxRuntimeProbe(info, ("CPUExecutionProvider",), precision, None)
    try:
        with probe.sample(inputs) as sample:
            return sample.fetch(names), sample.outputs
    finally:
        probe.close()


def test_fp16_preview_overflows_where_the_plain_converted_model_does_not(overflow):
    x = _x()
    reference = OnnxRuntimeBackend().run(load_model_info(overflow), {"x": x})["out"]
    assert np.isfinite(reference).all()
    preview = OnnxRuntimeBackend().run(load_model_info(overflow), {"x": x}, precision="fp16")["out"]
    assert preview.dtype == np.float32 and preview.shape == (4, 64)
    assert np.isnan(preview).any()              # 'scores' overflows to Inf, LayerNormalization makes it NaN
    # Why the preview emulates: onnxruntime's CPU provider computes float16 MatMul in float32 and drops the cast
    # pairs around it, so the converted model as it is never overflows.
    converted = convert(onnx.load(str(overflow)), "float16")
    assert np.isfinite(_ort(converted, {"x": x})[0]).all()
    assert np.isnan(_ort(emulate(converted, "float16"), {"x": x})[0]).any()


def test_emulated_fp16_tensors_hold_the_float16_rounding_of_the_float32_computation(overflow):
    x = _x(1)
    got, outputs = _fetch(load_model_info(overflow), "fp16", {"x": x}, ["h", "logits", "out"])
    w1 = numpy_helper.to_array(next(i for i in onnx.load(str(overflow)).graph.initializer if i.name == "w1"))
    half = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
    h = got["h"]
    assert h.dtype == np.float32                                  # names kept, values widened back to float32
    assert np.array_equal(h, half(h))                             # every element is a float16 value
    expected = half(half(x) @ half(w1))                           # inputs and weights rounded, MatMul in float32
    # equal but where onnxruntime's float32 sum and numpy's round differently (at most one float16 step)
    assert (h == expected).mean() > 0.99 and np.abs(h - expected).max() <= np.abs(expected).max() * 2 ** -10
    assert not np.array_equal(h, x @ w1)                          # and not the float32 result
    assert np.isinf(got["logits"]).any() and np.isnan(got["out"]).any()
    assert np.array_equal(outputs["out"], got["out"], equal_nan=True)


def test_bf16_preview_of_an_mlp_runs_and_rounds_to_bfloat16():
    info = load_model_info(MLP)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 16)).astype(np.float32)
    reference = OnnxRuntimeBackend().run(info, {"x": x})["y"]
    preview = OnnxRuntimeBackend().run(info, {"x": x}, precision="bf16")["y"]
    assert preview.dtype == np.float32 and np.isfinite(preview).all()
    scale = np.abs(reference).max()
    error = np.abs(preview - reference).max()
    assert 0 < error < 0.05 * scale                              # bfloat16 loses bits, and only a few
    got, _ = _fetch(info, "bf16", {"x": x}, ["h", "hr"])
    bf16 = lambda a: a.astype(ml_dtypes.bfloat16).astype(np.float32)  # noqa: E731
    assert np.array_equal(got["h"], bf16(got["h"])) and np.array_equal(got["hr"], bf16(got["hr"]))
    exact, _ = _fetch(info, "fp32", {"x": x}, ["h"])
    assert not np.array_equal(exact["h"], bf16(exact["h"]))      # the float32 values are not bfloat16 ones
    relative = np.abs(got["h"] - exact["h"]).max() / np.abs(exact["h"]).max()
    assert 2 ** -11 < relative < 2 ** -5                          # 8 significant bits: coarser than float16's 11


def test_emulated_model_computes_in_float32_with_rounded_weights(overflow):
    emulated = emulate(convert(onnx.load(str(overflow)), "float16"), "float16")
    assert all(i.data_type == onnx.TensorProto.FLOAT for i in emulated.graph.initializer)
    w2 = numpy_helper.to_array(next(i for i in emulated.graph.initializer if i.name.startswith("w2")))
    assert np.array_equal(w2, w2.astype(np.float16).astype(np.float32))
    casts = [n for n in emulated.graph.node if n.op_type == "Cast"]
    # every reduced tensor is produced in float32, cast to float16 (the rounding) and back under its own name
    for name in ("h", "r", "rs", "logits"):
        widen = next(n for n in casts if list(n.output) == [name])
        stored = next(n for n in casts if list(n.output) == list(widen.input))
        assert stored.attribute[0].i == onnx.TensorProto.FLOAT16 and widen.attribute[0].i == onnx.TensorProto.FLOAT
    onnx.checker.check_model(emulated)


def test_precision_reason_and_previews():
    backend = OnnxRuntimeBackend()
    assert backend.previews == PREVIEWS == ("fp16", "bf16")
    assert [backend.precision_reason(p) for p in ("fp32", "fp16", "bf16")] == [None, None, None]
    reason = backend.precision_reason("int8")
    assert reason.startswith("onnxruntime runs the model as written (fp32) or converted to fp16/bf16 as a preview")
    assert reason.endswith("cannot realize precision 'int8'") and "\n" not in reason
    with pytest.raises(BackendError, match="cannot realize precision 'int8'"):
        backend.run(load_model_info(MLP), {"x": np.zeros((1, 16), np.float32)}, precision="int8")
    with pytest.raises(BackendError, match="cannot realize precision 'fp8'"):
        backend.probe(load_model_info(MLP), precision="fp8")


def test_probe_exposes_every_node_output_and_the_model_outputs(overflow):
    info = load_model_info(overflow)
    probe = OnnxRuntimeBackend().probe(info, precision="fp16", tensors=["h"])
    try:
        assert probe.preview and probe.method == "graph outputs (onnxruntime)" and not probe.fusions_broken
        assert {"h", "r", "rs", "logits", "out"} <= {k for k, v in probe.tensors().items() if v == "observed"}
        with probe.sample({"x": _x()}) as sample:
            assert sample.outputs is None
            first = sample.fetch(["h"])
            assert list(first) == ["h"] and list(sample.outputs) == ["out"]
            assert set(sample.fetch(["r", "out"])) == {"r", "out"}
    finally:
        probe.close()


def _check(path, precision):
    spec = parse_marker((), {"model": str(path), "atol": 1e-2, "rtol": 1e-2, "input_range": (0, 1),
                             "localize": False})
    return run_check(spec, precision, CheckContext("t.py::test_x", None), engine=get_backend("onnxruntime"))


def test_check_results_say_preview_at_fp16_and_not_at_fp32(overflow):
    fp16 = _check(overflow, "fp16")
    assert not fp16.passed and fp16.preview
    assert fp16.backend["preview"] == PREVIEW_NOTE.format(precision="fp16")
    assert "converted to fp16 and run by onnxruntime, not a TensorRT engine" in fp16.backend["preview"]
    assert fp16.engine_vs_reference.actual_label == "engine (onnxruntime preview, fp16)"
    assert "engine (onnxruntime preview, fp16) vs reference (onnxruntime)" in fp16.message
    fp32 = _check(overflow, "fp32")
    assert fp32.passed and not fp32.preview and "preview" not in fp32.backend
    assert fp32.engine_vs_reference.actual_label == "engine (onnxruntime, fp32)"
