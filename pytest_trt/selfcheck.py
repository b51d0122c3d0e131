"""First thing to run on a new TensorRT machine: ``python -m pytest_trt.selfcheck``.

Builds a generated MLP (three 1024-wide MatMul + Add layers with ReLU between; dynamic batch; large
enough that TensorRT picks reduced-precision kernels when allowed) through every precision the installed
TensorRT flavor can realize, runs it with execute_async_v3, compares with onnxruntime at the tolerances below,
and prints each engine's precision census (how many compute layers run in which precision). One line per
precision; exit status 0 when all match (a precision no layer runs in is reported, not failed: TensorRT may
legitimately keep fp32 kernels).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

PRECISIONS_TRIED = ("fp32", "tf32", "fp16", "bf16")
WIDTH, LAYERS, BATCH = 1024, 3, 64
# Tolerances for this model's outputs (about 1 in size; 1024-term dot products). TensorRT 8.6's fp16 engine on
# an H200 gave max |error| 4.0e-3 and needed atol >= 1.8e-3 at rtol 0.02; tf32 has fp16's 10-bit mantissa, bf16
# three bits fewer.
TOLERANCES = {"fp32": (1e-5, 1e-4), "tf32": (5e-3, 2e-2), "fp16": (5e-3, 2e-2), "bf16": (4e-2, 1e-1)}


def mlp_model(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, weights, last = [], [], "x"
    for i in range(LAYERS):
        weights += [numpy_helper.from_array((rng.standard_normal((WIDTH, WIDTH)) / WIDTH ** 0.5).astype(np.float32),
                                            f"w{i}"),
                    numpy_helper.from_array((rng.standard_normal(WIDTH) / 10).astype(np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [last, f"w{i}"], [f"h{i}"]),
                  helper.make_node("Add", [f"h{i}", f"b{i}"], [f"a{i}"])]
        last = f"a{i}"
        if i < LAYERS - 1:
            nodes.append(helper.make_node("Relu", [last], [f"r{i}"]))
            last = f"r{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(nodes, "selfcheck",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", WIDTH])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_trt.selfcheck", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="tensorrt, tensorrt_rtx, or auto (the first that can run)")
    parser.add_argument("--build-options", default="", help="builder options, as for pytest --trt-build-options")
    args = parser.parse_args(argv)

    import pytest_trt
    from pytest_trt.backends.registry import get_backend, select_engine_backend
    from pytest_trt.backends.tensorrt.runtime import Engine
    from pytest_trt.comparison.report import short
    from pytest_trt.reports.census import census_text, shortfall

    backend, reason = select_engine_backend(args.backend) if args.backend == "auto" else (get_backend(args.backend), None)
    if backend is None or backend.unavailable_reason():
        print(f"selfcheck: {reason or backend.unavailable_reason()}")
        return 2
    print(f"selfcheck: {backend.describe()}")
    failures = not_realized = 0
    with tempfile.TemporaryDirectory() as tmp:
        model = mlp_model(Path(tmp) / "selfcheck.onnx")
        inputs = pytest_trt.make_inputs(model, shapes={"x": (BATCH, WIDTH)})
        reference = pytest_trt.run_onnxruntime(model, inputs)
        for precision in PRECISIONS_TRIED:
            why = backend.precision_reason(precision)
            if why:
                print(f"  {precision:5s} skipped: {why}")
                continue
            atol, rtol = TOLERANCES[precision]
            start = time.perf_counter()
            try:
                plan = pytest_trt.build_engine(model, backend=backend.name, precision=precision,
                                               shapes={"x": {"min": (1, WIDTH), "opt": (BATCH, WIDTH),
                                                             "max": (BATCH, WIDTH)}},
                                               build=args.build_options or None)
                with Engine(backend.trt(), plan) as engine:  # deserialized once: run, then read its census
                    outputs, census = engine.run(inputs), engine.census()
                report = pytest_trt.compare(outputs, reference, atol=atol, rtol=rtol)
            except Exception as exc:  # report every precision, not only the first failure
                failures += 1
                print(f"  {precision:5s} ERROR: {type(exc).__name__}: {exc}")
                continue
            seconds = time.perf_counter() - start
            status = "ok" if report.passed else "MISMATCH"
            failures += not report.passed
            worst = report.outputs[0].max_abs
            print(f"  {precision:5s} {status}: max |engine - onnxruntime| = {short(worst.value)} "
                  f"(atol {atol:g}, rtol {rtol:g}); build + run {seconds:.1f} s")
            print(f"        layers: {census_text(census)}")
            missing = shortfall(precision, census)
            if missing:
                not_realized += 1
                print(f"        note: {missing}")
            if not report.passed:
                print("    " + report.message.replace("\n", "\n    "))
    print("selfcheck: " + ("all precisions match onnxruntime" if not failures else f"{failures} precision(s) failed")
          + (f"; {not_realized} precision(s) ran in another precision than asked" if not_realized else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
