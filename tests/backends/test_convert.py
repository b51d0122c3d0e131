"""fp16/bf16 conversion for strongly typed TensorRT: type-consistent graphs, same I/O, close numbers; pytest-trt's
casts and ModelOpt AutoCast on PyTorch-exported models."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto

import pytest_trt
from pytest_trt.errors import ModelError
from pytest_trt.backends.convert import convert, convert_file

from shared import AUTOCAST_MISSING

EXAMPLES = pytest_trt.__file__.rsplit("/", 2)[0] + "/examples/models"


@pytest.mark.parametrize("name, shapes", [("mlp", {"x": (4, 16)}), ("two_heads", {}), ("attention", {"tokens": (1, 8, 32)})])
def test_fp16_conversion_runs_in_onnxruntime_close_to_fp32(name, shapes):
    path = f"{EXAMPLES}/{name}.onnx"
    converted = convert(onnx.load(path), "float16")
    types = {i.name: i.type.tensor_type.elem_type for i in (*converted.graph.input, *converted.graph.output)}
    original = onnx.load(path)
    assert types == {i.name: i.type.tensor_type.elem_type for i in (*original.graph.input, *original.graph.output)}
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in converted.graph.initializer)
    inputs = pytest_trt.make_inputs(path, shapes=shapes)
    got = dict(zip([o.name for o in converted.graph.output],
                   ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)))
    pytest_trt.assert_close(got, pytest_trt.run_onnxruntime(path, inputs), atol=5e-3, rtol=5e-3)


def test_bf16_conversion_refused_where_onnx_schema_forbids_it():
    with pytest.raises(ModelError, match="converting the model to bfloat16 gave an invalid graph .*Conv"):
        convert(onnx.load(f"{EXAMPLES}/two_heads.onnx"), "bfloat16")


def test_bf16_conversion_of_attention_is_type_consistent():
    converted = convert(onnx.load(f"{EXAMPLES}/attention.onnx"), "bfloat16")
    onnx.checker.check_model(converted, full_check=True)
    assert any(i.data_type == onnx.TensorProto.BFLOAT16 for i in converted.graph.initializer)


# ---------------------------------------------------------------- PyTorch-exported models, both converters

TORCH = Path(__file__).resolve().parents[1] / "data" / "torch"   # benchmarks/torch_models.py --width 32
TORCH_SHAPES = {"attention": (3, 16, 32), "cnn": (3, 3, 32, 32), "mlp": (3, 32)}
CONVERTERS = ["casts", pytest.param("autocast", marks=pytest.mark.skipif(
    AUTOCAST_MISSING is not None, reason=str(AUTOCAST_MISSING)))]


def float_types(model) -> dict:
    """Tensor name -> elem type of every float tensor the model computes (shape inference)."""
    graph = onnx.shape_inference.infer_shapes(model).graph
    return {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}


def node_outputs_in(model, op_type) -> set:
    types = float_types(model)
    return {types[n.output[0]] for n in model.graph.node if n.op_type == op_type}


@pytest.mark.parametrize("converter", CONVERTERS)
@pytest.mark.parametrize("name", sorted(TORCH_SHAPES))
def test_torch_exports_convert_to_fp16_that_runs_close_to_fp32(name, converter):
    path = TORCH / f"{name}.onnx"
    converted = convert_file(path, "float16", converter)
    onnx.checker.check_model(converted, full_check=True)
    original = onnx.load(str(path))
    io = [(i.name, i.type.tensor_type.elem_type) for i in (*converted.graph.input, *converted.graph.output)]
    assert io == [(i.name, i.type.tensor_type.elem_type) for i in (*original.graph.input, *original.graph.output)]
    assert node_outputs_in(converted, "Gemm") == {TensorProto.FLOAT16}   # the head computes in fp16
    for batch in (1, TORCH_SHAPES[name][0]):                         # dynamic batch kept
        inputs = pytest_trt.make_inputs(path, shapes={"x": (batch, *TORCH_SHAPES[name][1:])})
        session = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
        got = dict(zip([o.name for o in converted.graph.output], session.run(None, inputs)))
        expected = pytest_trt.run_onnxruntime(path, inputs)
        pytest_trt.assert_close(got, expected, atol=2e-3, rtol=2e-2)
        assert not np.array_equal(got["y"], expected["y"])             # fp16 arithmetic happened


def test_the_converters_differ_where_documented():
    """casts keeps normalizations, reductions and Softmax in fp32; AutoCast converts every node whose values stay
    within 512 on its calibration data (all of them here)."""
    attention, cnn = TORCH / "attention.onnx", TORCH / "cnn.onnx"
    casts = convert_file(attention, "float16", "casts")
    assert node_outputs_in(casts, "LayerNormalization") == {TensorProto.FLOAT}
    assert node_outputs_in(casts, "Softmax") == {TensorProto.FLOAT}
    assert node_outputs_in(convert_file(cnn, "float16", "casts"), "BatchNormalization") == {TensorProto.FLOAT}
    with pytest.raises(ModelError, match="converting the model to bfloat16 gave an invalid graph .*Conv"):
        convert_file(cnn, "bfloat16", "casts")   # opset 20 has no bf16 Conv; casts keeps the opset
    if AUTOCAST_MISSING:
        pytest.skip(AUTOCAST_MISSING)
    autocast = convert_file(attention, "float16", "autocast")
    assert node_outputs_in(autocast, "LayerNormalization") == {TensorProto.FLOAT16}
    assert node_outputs_in(autocast, "Softmax") == {TensorProto.FLOAT16}
    bf16 = convert_file(cnn, "bfloat16", "autocast")     # AutoCast raises the opset to 22, where Conv takes bf16
    assert node_outputs_in(bf16, "Conv") == {TensorProto.BFLOAT16} and bf16.opset_import[0].version == 22


def test_casts_fp16_attention_loads_in_onnxruntime_with_all_optimizations(tmp_path):
    """onnxruntime 1.31's NCHWc layout pass crashed (SIGSEGV) on this fp16 graph when it carried no value_info;
    the converter returns the shape-inferred model. In a child process: a crash must fail this test only."""
    out = tmp_path / "attention.fp16.onnx"
    onnx.save(convert_file(TORCH / "attention.onnx", "float16", "casts"), str(out))
    assert len(onnx.load(str(out)).graph.value_info) > 0
    code = ("import onnxruntime as ort, numpy as np; s = ort.InferenceSession(__import__('sys').argv[1], "
            "providers=['CPUExecutionProvider']); print(s.run(None, {'x': np.ones((2, 16, 32), np.float32)})[0].shape)")
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert proc.returncode == 0 and "(2, 16, 10)" in proc.stdout, (proc.returncode, proc.stderr[-500:])
