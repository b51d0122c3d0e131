"""fp16/bf16 conversion for strongly typed TensorRT: type-consistent graphs, same I/O, close numbers."""
import onnx
import onnxruntime as ort
import pytest

import pytest_trt
from pytest_trt.errors import ModelError
from pytest_trt.backends.tensorrt.convert import convert

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
