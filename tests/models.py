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
