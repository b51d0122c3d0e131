"""Make an int8 (Q/DQ) model to test with ``precision="int8"``: a small ResNet exported from PyTorch, quantized
with NVIDIA ModelOpt's ONNX post-training quantization, checked on onnxruntime's CPU.

    python examples/quantize/make_int8.py              # writes examples/quantize/resnet.onnx, resnet.int8.onnx
    python examples/quantize/make_int8.py OUT_DIR      # the same in OUT_DIR

Needs PyTorch, ModelOpt and the ONNX packages ModelOpt imports, beside pytest-trt's own onnx and onnxruntime
(a CPU-only machine needs nothing more; ModelOpt's ``[onnx]`` extra would add onnxruntime-gpu, cupy and an
older onnx):

    pip install torch nvidia-modelopt==0.47.0 onnx-graphsurgeon onnxslim onnxscript lief

The model: a stride-2 3x3 stem convolution, two residual blocks (Conv + BatchNorm + ReLU, the second with a
strided 1x1 projection shortcut), global average pooling and a linear head; input ``image`` float32[batch, 3, 64,
64], output ``logits`` float32[batch, 10]. Weights and BatchNorm statistics come from a fixed seed; the export folds
each BatchNorm into its Conv. resnet.onnx is opset 17 (TensorRT 8.6 documents opsets up to 17); ModelOpt 0.47
writes int8 models at opset 19 at least, so only ops that TensorRT 8.6 reads the same at opset 19 belong in the
model (the pooling below). The same inputs give the same bytes on every run. Calibration data
is 32 images uniform in [-1, 1), the distribution pytest-trt generates inputs from by default, so the
calibrated ranges fit the inputs the tests feed; it is saved as ``calib.npy`` next to the intermediate files
and passed by path, as ``python -m modelopt.onnx.quantization --calibration_data calib.npy`` would take it.

The script prints the Q/DQ node counts, the ops whose inputs are quantized, and two errors on onnxruntime: the
Q/DQ model against the fp32 model (max |int8 - fp32|, also relative to the fp32 output's range), and the Q/DQ
model on int8 kernels against the same model emulated in float (a measure of how far two correct executions
of one Q/DQ model may differ, as a TensorRT int8 engine and the onnxruntime reference do).
"""
from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

SHAPE = (1, 3, 64, 64)
CLASSES = 10


def resnet():
    """The fp32 network, in eval mode, with seeded weights and non-trivial BatchNorm statistics."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, kernel, stride):
        return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *conv_bn(cout, cout, 3, 1))
            self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else None

        def forward(self, x):
            skip = x if self.shortcut is None else self.shortcut(x)
            return torch.relu(self.body(x) + skip)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(*conv_bn(3, 16, 3, 2), nn.ReLU())
            self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2))
            self.head = nn.Linear(32, CLASSES)

        def forward(self, image):
            features = self.blocks(self.stem(image))
            # global average pooling as an AveragePool over the whole 16x16 map: mean() and AdaptiveAvgPool2d export
            # as ReduceMean-18, whose axes input TensorRT 8.6's parser ignores (it reduces over every axis)
            pooled = nn.functional.avg_pool2d(features, features.shape[-2:])
            return self.head(torch.flatten(pooled, 1))

    torch.manual_seed(0)
    model = ResNet()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def export(path: Path) -> None:
    """model.onnx: opset 17, dynamic batch, weights inside the file."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(resnet(), (torch.zeros(SHAPE),), dynamo=True, opset_version=17,
                                input_names=["image"], output_names=["logits"],
                                dynamic_shapes={"image": {0: batch}}, optimize=True, verify=False)
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def calibration_data(count: int = 32) -> np.ndarray:
    return np.random.default_rng(2024).uniform(-1, 1, (count, *SHAPE[1:])).astype(np.float32)


def quantize(fp32: Path, int8: Path, work: Path) -> None:
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    np.save(work / "calib.npy", calibration_data())
    modelopt_quantize(str(fp32), quantize_mode="int8", calibration_data=np.load(work / "calib.npy"),
                      calibration_method="max", calibration_eps=["cpu"], high_precision_dtype="fp32",
                      output_path=str(int8), log_level="WARNING")
    onnx.checker.check_model(onnx.load(str(int8)), full_check=True)


def describe(path: Path) -> dict:
    """Node counts, Q/DQ counts and the ops fed by a DequantizeLinear (the quantized ops)."""
    graph = onnx.load(str(path)).graph
    producer = {out: node for node in graph.node for out in node.output}
    quantized = collections.Counter()
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        fed = [i for i in node.input if i in producer and producer[i].op_type == "DequantizeLinear"]
        if fed:
            quantized[node.op_type] += 1
    ops = collections.Counter(node.op_type for node in graph.node)
    return {"nodes": sum(ops.values()), "ops": dict(sorted(ops.items())), "quantized": dict(sorted(quantized.items())),
            "bytes": path.stat().st_size}


def compare(fp32: Path, int8: Path, batch: int = 8) -> dict:
    """Errors on onnxruntime's CPU, on inputs not used for calibration: the Q/DQ model against the fp32 model
    (what quantization costs), and the Q/DQ model run with int8 kernels (onnxruntime's default graph optimizations
    fuse DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv) against the same model emulated in float
    (optimizations off): two valid executions of one Q/DQ model, as a TensorRT int8 engine and the reference are."""
    x = np.random.default_rng(7).uniform(-1, 1, (batch, *SHAPE[1:])).astype(np.float32)

    def run(path: Path, optimized: bool = True) -> np.ndarray:
        options = ort.SessionOptions()
        if not optimized:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return session.run(None, {"image": x})[0]

    reference, quantized, emulated = run(fp32), run(int8), run(int8, optimized=False)
    span = float(reference.max() - reference.min())
    error, kernels = np.abs(quantized - reference), np.abs(quantized - emulated)
    return {"max_abs": float(error.max()), "mean_abs": float(error.mean()), "range": span,
            "max_abs_over_range": float(error.max()) / span, "max_abs_output": float(np.abs(reference).max()),
            "top1_agree": float(np.mean(reference.argmax(1) == quantized.argmax(1))),
            "kernels_vs_emulated": float(kernels.max())}


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out_dir / "resnet.onnx", out_dir / "resnet.int8.onnx"
    with tempfile.TemporaryDirectory() as work:
        staged = Path(work) / "resnet.onnx"  # ModelOpt writes intermediate files beside its input
        export(staged)
        quantize(staged, int8, Path(work))
        fp32.write_bytes(staged.read_bytes())
    for path in (fp32, int8):
        info = describe(path)
        print(f"{path}: {info['bytes']} bytes, {info['nodes']} nodes {info['ops']}")
    print(f"quantized ops (fed by DequantizeLinear): {describe(int8)['quantized']}")
    error = compare(fp32, int8)
    print(f"onnxruntime CPU, int8 vs fp32 on 8 images: max |diff| {error['max_abs']:.4g}, mean |diff| "
          f"{error['mean_abs']:.4g}, fp32 output range {error['range']:.4g} (max |diff| / range "
          f"{error['max_abs_over_range']:.3g}), top-1 agreement {error['top1_agree']:.0%}")
    print(f"onnxruntime CPU, int8 kernels vs the Q/DQ model emulated in float: max |diff| "
          f"{error['kernels_vs_emulated']:.4g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Export a small ResNet and quantize it to int8 Q/DQ with ModelOpt.")
    parser.add_argument("out_dir", nargs="?", type=Path, default=Path(__file__).resolve().parent)
    main(parser.parse_args().out_dir)
