"""Small real ONNX models for the tests, built with onnx.helper."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_TYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int64": TensorProto.INT64,
          "int32": TensorProto.INT32, "bool": TensorProto.BOOL, "uint8": TensorProto.UINT8}


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _model(graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def scale_model(path, dims=("batch", 4), factor: float = 2.0, offset: float = 0.0) -> Path:
    """y = x * factor + offset; x float32 with ``dims`` (strings are dynamic)."""
    inits = [numpy_helper.from_array(np.array(factor, np.float32), "f"),
             numpy_helper.from_array(np.array(offset, np.float32), "o")]
    nodes = [helper.make_node("Mul", ["x", "f"], ["m"]), helper.make_node("Add", ["m", "o"], ["y"])]
    graph = helper.make_graph(nodes, "scale", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))], inits)
    return _save(_model(graph), path)


def two_io_model(path) -> Path:
    """a float32[2,3], b int64[2,3] -> s = a + a (float32), i = b + 1 (int64)."""
    inits = [numpy_helper.from_array(np.array(1, np.int64), "one")]
    nodes = [helper.make_node("Add", ["a", "a"], ["s"]), helper.make_node("Add", ["b", "one"], ["i"])]
    graph = helper.make_graph(
        nodes, "two_io",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("b", TensorProto.INT64, [2, 3])],
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 3]), helper.make_tensor_value_info("i", TensorProto.INT64, [2, 3])],
        inits)
    return _save(_model(graph), path)


def identity_model(path, dtype: str, dims=(2, 3)) -> Path:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity",
                              [helper.make_tensor_value_info("x", _TYPES[dtype], list(dims))],
                              [helper.make_tensor_value_info("y", _TYPES[dtype], list(dims))])
    return _save(_model(graph), path)


def external_data_model(path) -> Path:
    """y = x + w with w (1024 floats) stored as external data next to the model."""
    w = numpy_helper.from_array(np.arange(1024, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024])], [w])
    model = _model(graph)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=path.stem + ".data", size_threshold=0)
    return path


def qdq_conv_model(path, *, kernel_shape: bool = True, weight_axis: int = 0, zero_point: int | None = 0,
                   dtype: str = "int8", activation_axis: int | None = None) -> Path:
    """One per-channel int8 Q/DQ Conv, made by hand: x float32[1,4,8,8] -> Q/DQ (per tensor) -> Conv(3x3, 8 out,
    pads 1) with weights stored as ``dtype`` and a per-channel DequantizeLinear along ``weight_axis`` -> y float32[1,8,8,8].

    The defaults are what TensorRT's ONNX parser takes (8.6 included): the Conv names its ``kernel_shape``, the
    weights are an int8 initializer with one DequantizeLinear, per output channel (axis 0), zero points all zero,
    activations per tensor. ``kernel_shape=False`` leaves the attribute out (valid ONNX: it defaults to the weight's
    spatial shape); ``zero_point`` sets the activation zero point (None: no zero point input, which ONNX reads
    as uint8 0; ``dtype="uint8"``: activations in uint8); ``activation_axis`` gives activations one scale per
    channel along that axis.
    """
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    act = np.uint8 if dtype == "uint8" else np.int8
    reduce = tuple(i for i in range(4) if i != weight_axis)
    w_scale = (np.abs(w).max(axis=reduce) / 127).astype(np.float32)
    broadcast = [1, 1, 1, 1]
    broadcast[weight_axis] = w.shape[weight_axis]
    w_int8 = np.clip(np.round(w / w_scale.reshape(broadcast)), -127, 127).astype(np.int8)
    per_channel = {} if activation_axis is None else {"axis": activation_axis}
    x_shape = () if activation_axis is None else (4,)
    x_names = ["x_scale"] if zero_point is None else ["x_scale", "x_zero_point"]
    inits = [numpy_helper.from_array(np.full(x_shape, 1 / 127, np.float32), "x_scale"),
             *([] if zero_point is None else [numpy_helper.from_array(np.full(x_shape, zero_point, act), "x_zero_point")]),
             numpy_helper.from_array(w_int8, "w_int8"), numpy_helper.from_array(w_scale, "w_scale"),
             numpy_helper.from_array(np.zeros(w.shape[weight_axis], np.int8), "w_zero_point"),
             numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "b")]
    conv = {"pads": [1, 1, 1, 1], **({"kernel_shape": [3, 3]} if kernel_shape else {})}
    nodes = [helper.make_node("QuantizeLinear", ["x", *x_names], ["x_q"], name="x_q", **per_channel),
             helper.make_node("DequantizeLinear", ["x_q", *x_names], ["x_dq"], name="x_dq", **per_channel),
             helper.make_node("DequantizeLinear", ["w_int8", "w_scale", "w_zero_point"], ["w_dq"], name="w_dq",
                              axis=weight_axis),
             helper.make_node("Conv", ["x_dq", "w_dq", "b"], ["y"], name="conv", **conv)]
    graph = helper.make_graph(nodes, "qdq_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], inits)
    return _save(_model(graph), path)


def overflow_model(path) -> Path:
    """x[4,64] -> proj (MatMul) -> act (Relu) -> scale (Mul 30) -> scores (MatMul, outputs above 65504 for inputs
    in [0, 1]) -> norm (LayerNormalization) -> out. In fp16 ``scores`` overflows to Inf and ``norm`` turns the Inf
    into NaN: the first diverging node is ``scores``."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array((rng.standard_normal((64, 64)) * 0.1).astype(np.float32), "w1")
    w2 = numpy_helper.from_array((np.abs(rng.standard_normal((64, 64))) * 400).astype(np.float32), "w2")
    s = numpy_helper.from_array(np.array(30.0, np.float32), "s")
    gamma = numpy_helper.from_array(np.ones(64, np.float32), "gamma")
    beta = numpy_helper.from_array(np.zeros(64, np.float32), "beta")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="proj"),
             helper.make_node("Relu", ["h"], ["r"], name="act"),
             helper.make_node("Mul", ["r", "s"], ["rs"], name="scale"),
             helper.make_node("MatMul", ["rs", "w2"], ["logits"], name="scores"),
             helper.make_node("LayerNormalization", ["logits", "gamma", "beta"], ["out"], name="norm", axis=-1)]
    graph = helper.make_graph(nodes, "overflow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [4, 64])],
                              [w1, w2, s, gamma, beta])
    return _save(_model(graph), path)
