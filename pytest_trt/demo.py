"""Small, real ONNX models to try pytest-trt on, made with onnx.helper (deterministic: same bytes every run).

    python -m pytest_trt.demo                   # writes models/mlp.onnx, models/two_heads.onnx, models/attention.onnx
    python -m pytest_trt.demo DIR --nudge 1e-3  # the same in DIR, with the MLP's second-layer weights 0.1% larger
                                                # (a "retrained" model: its goldens then fail; run again without
                                                # --nudge to restore it)

- mlp.onnx        x float32[batch, 16] -> y float32[batch, 8]           (dynamic batch)
- two_heads.onnx  image float32[1, 3, 8, 8], bias float32[10]
                  -> scores float32[1, 10], label int64[1]              (two inputs, two outputs, an integer output)
- attention.onnx  tokens float32[1, seq, 32] -> out float32[1, seq, 32] (dynamic sequence; LayerNorm, Softmax, MatMul)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _weights(seed: int, *shape: int, scale: float = 0.5) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pytest-trt examples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def mlp(nudge: float = 0.0) -> onnx.ModelProto:
    w2 = _weights(3, 32, 8) * np.float32(1 + nudge)
    inits = [numpy_helper.from_array(_weights(1, 16, 32), "w1"), numpy_helper.from_array(_weights(2, 32), "b1"),
             numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(_weights(4, 8), "b2")]
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr", "w2", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], inits)
    return _model(graph)


def two_heads() -> onnx.ModelProto:
    inits = [numpy_helper.from_array(_weights(5, 4, 3, 3, 3), "conv_w"),
             numpy_helper.from_array(_weights(6, 4), "conv_b"),
             numpy_helper.from_array(_weights(7, 4, 10), "fc_w")]
    nodes = [helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["cr"]),
             helper.make_node("GlobalAveragePool", ["cr"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "fc_w"], ["logits"]),
             helper.make_node("Add", ["logits", "bias"], ["scores"]),
             helper.make_node("ArgMax", ["scores"], ["label2d"], axis=1, keepdims=1),
             helper.make_node("Squeeze", ["label2d", "axes"], ["label"])]
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"))
    graph = helper.make_graph(
        nodes, "two_heads",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8]),
         helper.make_tensor_value_info("bias", TensorProto.FLOAT, [10])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10]),
         helper.make_tensor_value_info("label", TensorProto.INT64, [1])], inits)
    return _model(graph)


def attention(dim: int = 32) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.ones(dim, np.float32), "ln_scale"),
             numpy_helper.from_array(np.zeros(dim, np.float32), "ln_bias"),
             numpy_helper.from_array(_weights(8, dim, dim, scale=dim ** -0.5), "wq"),
             numpy_helper.from_array(_weights(9, dim, dim, scale=dim ** -0.5), "wk"),
             numpy_helper.from_array(_weights(10, dim, dim, scale=dim ** -0.5), "wv"),
             numpy_helper.from_array(np.array(dim ** -0.5, np.float32), "scale")]
    nodes = [helper.make_node("LayerNormalization", ["tokens", "ln_scale", "ln_bias"], ["n"], axis=-1, epsilon=1e-5),
             helper.make_node("MatMul", ["n", "wq"], ["q"]),
             helper.make_node("MatMul", ["n", "wk"], ["k"]),
             helper.make_node("MatMul", ["n", "wv"], ["v"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["ss"]),
             helper.make_node("Softmax", ["ss"], ["a"], axis=-1),
             helper.make_node("MatMul", ["a", "v"], ["ctx"]),
             helper.make_node("Add", ["ctx", "tokens"], ["out"])]
    graph = helper.make_graph(nodes, "attention",
                              [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, "seq", dim])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "seq", dim])], inits)
    return _model(graph)


MODELS = {"mlp.onnx": mlp, "two_heads.onnx": two_heads, "attention.onnx": attention}


def main(out_dir: Path = Path("models"), nudge: float = 0.0) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        model = build(nudge) if name == "mlp.onnx" else build()
        (out_dir / name).write_bytes(model.SerializeToString())
        print(f"wrote {out_dir / name}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pytest_trt.demo", description="Write small example ONNX models.")
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path("models"), help="folder to write to (default: models)")
    parser.add_argument("--nudge", type=float, default=0.0,
                        help="scale the MLP's second-layer weights by 1 + NUDGE (simulates a retrained model)")
    args = parser.parse_args()
    main(args.out_dir, args.nudge)
