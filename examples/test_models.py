"""The example suite: what a model repo's tests look like with pytest-trt.

On a machine without TensorRT the engine side is skipped (the summary says why) and the
ONNX Runtime reference is checked against the goldens in golden/examples/test_models/.
"""
import numpy as np
import pytest


@pytest.mark.trt_compare(model="models/mlp.onnx", shapes={"x": (4, 16)},
                         precision=["fp32", "fp16"], tolerances={"fp16": {"atol": 1e-2, "rtol": 1e-2}})
def test_mlp(trt_compare):
    result = trt_compare()
    assert result.reference["y"].shape == (4, 8)


@pytest.mark.trt_compare(model="models/two_heads.onnx", atol=1e-4, rtol=1e-3, precision=["fp32", "fp16"],
                         tolerances={"fp16": {"scores": {"atol": 5e-2}}})
def test_two_heads(trt_compare):
    result = trt_compare()
    assert result.reference["label"].dtype == np.int64  # compared exactly, never with a tolerance


@pytest.mark.parametrize("seq", [8, 64])
@pytest.mark.trt_compare(model="models/attention.onnx", precision=["fp32", "fp16"],
                         tolerances={"fp16": {"atol": 2e-2, "rtol": 2e-2}})
def test_attention(trt_compare, seq):
    trt_compare(shapes={"tokens": (1, seq, 32)})


@pytest.mark.trt_compare(model="models/mlp.onnx")
def test_mlp_given_inputs(trt_compare):
    x = np.linspace(-2, 2, 3 * 16, dtype=np.float32).reshape(3, 16)
    trt_compare(inputs={"x": x})
