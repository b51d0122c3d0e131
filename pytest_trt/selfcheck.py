"""First thing to run on a new TensorRT machine: ``python -m pytest_trt.selfcheck``.

Builds a tiny generated model (MatMul, Add, Relu, Softmax; dynamic batch) through every precision the
installed TensorRT flavor can realize, runs it with execute_async_v3, and compares with onnxruntime
at that precision's default tolerances. Prints one line per precision; exit status 0 when all pass.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

PRECISIONS_TRIED = ("fp32", "tf32", "fp16", "bf16")


def tiny_model(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((rng.standard_normal((32, 16)) / 6).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32) / 10, "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Softmax", ["r"], ["y"], axis=-1)]
    graph = helper.make_graph(nodes, "selfcheck", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])], [w, b])
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
    from pytest_trt.comparison.report import short
    from pytest_trt.core.tolerance import resolve

    backend, reason = select_engine_backend(args.backend) if args.backend == "auto" else (get_backend(args.backend), None)
    if backend is None or backend.unavailable_reason():
        print(f"selfcheck: {reason or backend.unavailable_reason()}")
        return 2
    print(f"selfcheck: {backend.describe()}")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp) / "selfcheck.onnx")
        inputs = pytest_trt.make_inputs(model, shapes={"x": (8, 32)})
        reference = pytest_trt.run_onnxruntime(model, inputs)
        for precision in PRECISIONS_TRIED:
            why = backend.precision_reason(precision)
            if why:
                print(f"  {precision:5s} skipped: {why}")
                continue
            tol = resolve(precision, "y", {}, {})
            start = time.perf_counter()
            try:
                plan = pytest_trt.build_engine(model, backend=backend.name, precision=precision,
                                               shapes={"x": {"min": (1, 32), "opt": (8, 32), "max": (64, 32)}},
                                               build=args.build_options or None)
                outputs = pytest_trt.run_engine(plan, inputs, backend=backend.name)
                report = pytest_trt.compare(outputs, reference, atol=tol.atol, rtol=tol.rtol)
            except Exception as exc:  # report every precision, not only the first failure
                failures += 1
                print(f"  {precision:5s} ERROR: {type(exc).__name__}: {exc}")
                continue
            seconds = time.perf_counter() - start
            status = "ok" if report.passed else "MISMATCH"
            failures += not report.passed
            worst = report.outputs[0].max_abs
            print(f"  {precision:5s} {status}: max |engine - onnxruntime| = {short(worst.value)} "
                  f"(atol {tol.atol:g}, rtol {tol.rtol:g}); build + run {seconds:.1f} s")
            if not report.passed:
                print("    " + report.message.replace("\n", "\n    "))
    print("selfcheck: " + ("all precisions match onnxruntime" if not failures else f"{failures} precision(s) failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
