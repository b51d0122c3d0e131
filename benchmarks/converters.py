"""fp16/bf16 converters for strongly typed TensorRT, side by side in one run: pytest-trt's casts and ModelOpt AutoCast.

    pip install -c .ci/constraints.txt -e ".[test,autocast]"     # torch, ModelOpt AutoCast, TensorRT-RTX
    python benchmarks/converters.py [--width 64]

Exports three PyTorch models with a dynamic batch (``benchmarks/torch_models.py``: a TransformerEncoder block
with LayerNorm, a CNN with BatchNorm, an MLP), converts each with both converters to fp16 and bf16, and
measures per conversion:

- conversion seconds (AutoCast's first call also imports modelopt and torch: printed apart);
- whether the result passes onnx's full checker, and loads and runs in onnxruntime (CPU; in a child process,
  so a crash of onnxruntime is recorded, not fatal);
- the share of compute nodes (those with a float output, not Cast or data movement) computing in fp16/bf16;
- for fp16, the error against the fp32 model on onnxruntime at batch 1 and 8 (inputs uniform in [-1, 1)):
  max |a-b|, max |a-b| / |ref| (elementwise), and max |a-b| / max |ref|; onnxruntime's CPU provider has no
  bf16 MatMul/Gemm/Conv kernels, so bf16 is checked for validity and build only;
- whether TensorRT-RTX builds it (CPU build, dynamic batch 1..64), as ``model={"fp32": ..., "fp16": ...}``
  builds the file: as it is, types from the file.

Then the ratios autocast / casts for time and error.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto  # noqa: E402

import torch_models  # noqa: E402
from pytest_trt.backends.convert import convert_file, converter_reason  # noqa: E402

TARGETS = {"fp16": "float16", "bf16": "bfloat16"}
LOW = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
FLOATS = (TensorProto.FLOAT, *LOW)
MOVEMENT = {"Cast", "CastLike", "Constant", "Identity", "Shape", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
            "Gather", "Slice", "Concat", "Flatten", "Split", "Expand"}
BATCHES = (1, 8)
# onnxruntime in a child process: a crash (it happens on some fp16 graphs) is a result, not the end of the run
_RUNNER = """
import sys, numpy as np, onnxruntime as ort
model, data, out = sys.argv[1:]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
inputs = dict(np.load(data))
np.savez(out, **{f"b{k}": session.run(None, {"x": inputs[k]})[0].astype(np.float32) for k in inputs})
"""


def low_share(model) -> tuple[int, int]:
    """(compute nodes in fp16/bf16, compute nodes): nodes with a float output, data movement and casts aside."""
    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.input, *graph.output)}
    types.update({i.name: i.data_type for i in graph.initializer})
    low = total = 0
    for node in graph.node:
        outputs = [types.get(name) for name in node.output]
        if node.op_type in MOVEMENT or not any(t in FLOATS for t in outputs):
            continue
        total += 1
        low += any(t in LOW for t in outputs)
    return low, total


def run_in_child(model: Path, inputs: dict, folder: Path) -> tuple[dict | None, str]:
    data, out = folder / "inputs.npz", folder / "outputs.npz"
    np.savez(data, **{str(k): v for k, v in inputs.items()})
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(model), str(data), str(out)],
                          capture_output=True, text=True)
    if proc.returncode:
        if proc.returncode < 0:
            return None, f"CRASHES (signal {-proc.returncode})"
        kernel = re.search(r"Could not find an implementation for (\w+)", proc.stderr)
        return None, f"no {kernel.group(1)} kernel" if kernel else "FAILS: " + proc.stderr.strip().splitlines()[-1][:60]
    with np.load(out) as saved:
        return {int(k[1:]): saved[k] for k in saved.files}, "runs"


def rtx_builds(fp32: Path, converted: Path, precision: str, name: str, width: int) -> str:
    if importlib.util.find_spec("tensorrt_rtx") is None:
        return "tensorrt-rtx not installed"
    import pytest_trt

    shape = torch_models.input_shape(name, 4, width)
    profile = {"x": {"min": (1, *shape[1:]), "opt": shape, "max": (64, *shape[1:])}}
    start = time.perf_counter()
    try:
        plan = pytest_trt.build_engine({"fp32": str(fp32), precision: str(converted)}, backend="tensorrt_rtx",
                                       precision=precision, shapes=profile)
    except Exception as exc:
        return f"FAILS: {str(exc).splitlines()[0][:80]}"
    return f"builds ({len(plan) // 1024} KiB, {time.perf_counter() - start:.1f} s)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    converters = ["casts"]
    start = time.perf_counter()
    reason = converter_reason("autocast")  # imports modelopt.onnx.autocast, and with it torch
    if reason:
        print(f"autocast left out: {reason}")
    else:
        from pytest_trt.backends.convert import converter_id

        converters.append("autocast")
        print(f"import modelopt.onnx.autocast (and torch): {time.perf_counter() - start:.2f} s; "
              f"{converter_id('autocast')}")
    rows, errors = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in torch_models.MODELS:
            start = time.perf_counter()
            fp32 = torch_models.export(name, folder, args.width)
            print(f"exported {name}.onnx with torch {__import__('torch').__version__} in "
                  f"{time.perf_counter() - start:.1f} s")
            rng = np.random.default_rng(0)
            inputs = {b: rng.uniform(-1, 1, torch_models.input_shape(name, b, args.width)).astype(np.float32)
                      for b in BATCHES}
            reference, _ = run_in_child(fp32, inputs, folder)
            for precision, target in TARGETS.items():
                for converter in converters:
                    row = {"model": name, "precision": precision, "converter": converter}
                    rows.append(row)
                    start = time.perf_counter()
                    try:
                        model = convert_file(fp32, target, converter)
                    except Exception as exc:
                        row["convert"] = f"FAILS: {str(exc).splitlines()[0][:100]}"
                        continue
                    row["seconds"] = time.perf_counter() - start
                    try:
                        onnx.checker.check_model(model, full_check=True)
                        row["check"] = "valid"
                    except Exception as exc:
                        row["check"] = f"INVALID: {str(exc).splitlines()[0][:60]}"
                    row["low"], row["compute"] = low_share(model)
                    path = folder / f"{name}.{converter}.{precision}.onnx"
                    onnx.save(model, str(path))
                    outputs, row["onnxruntime"] = run_in_child(path, inputs, folder)
                    if outputs is not None and precision == "fp16":
                        diff = max(float(np.abs(outputs[b] - reference[b]).max()) for b in BATCHES)
                        rel = max(float((np.abs(outputs[b] - reference[b]) /
                                         np.maximum(np.abs(reference[b]), np.finfo(np.float32).tiny)).max())
                                  for b in BATCHES)
                        scale = max(float(np.abs(reference[b]).max()) for b in BATCHES)
                        errors[(name, converter)] = row["error"] = (diff, rel, diff / scale)
                    row["tensorrt_rtx"] = rtx_builds(fp32, path, precision, name, args.width)
    print()
    print(f"{'model':10} {'prec':5} {'converter':9} {'seconds':>8} {'onnx check':11} {'fp16/bf16 nodes':>16} "
          f"{'max abs':>9} {'max rel':>9} {'abs/max|y|':>10}  {'onnxruntime':12} tensorrt-rtx")
    for row in rows:
        if "convert" in row:
            print(f"{row['model']:10} {row['precision']:5} {row['converter']:9} conversion {row['convert']}")
            continue
        share = f"{row['low']}/{row['compute']} ({100 * row['low'] / max(row['compute'], 1):.0f}%)"
        error = "".join(f"{v:>10.2e}" for v in row["error"]) if "error" in row else f"{'-':>10}" * 3
        print(f"{row['model']:10} {row['precision']:5} {row['converter']:9} {row['seconds']:8.3f} {row['check']:11} "
              f"{share:>16}{error}  {row['onnxruntime']:12} {row['tensorrt_rtx']}")
    if "autocast" in converters:
        print("\nautocast / casts (fp16):")
        for name in torch_models.MODELS:
            seconds = {r["converter"]: r.get("seconds") for r in rows if r["model"] == name and r["precision"] == "fp16"}
            if (name, "casts") in errors and (name, "autocast") in errors and all(seconds.values()):
                a, c = errors[(name, "autocast")], errors[(name, "casts")]
                print(f"  {name:10} time {seconds['autocast'] / seconds['casts']:6.1f}x   max abs "
                      f"{a[0] / c[0]:5.2f}x   abs/max|y| {a[2] / c[2]:5.2f}x")


if __name__ == "__main__":
    main()
