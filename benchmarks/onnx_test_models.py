"""Do generated inputs suit real models? make_inputs against the test models that onnx ships.

Selection rule: every ``model.onnx`` under ``onnx/backend/test/data/`` that has a ``test_data_set_0``,
whose inputs pytest-trt can hold (tensors of a numpy dtype: string inputs are out) and that onnxruntime's
CPU provider loads and runs on the model's own ``test_data_set_0`` inputs. With onnx 1.23.2 and
onnxruntime 1.31.1 that keeps 98 of the 140 shipped models (of the others, 34 use operator versions
onnxruntime no longer implements, 2 are training-graph models, 6 use StringNormalizer: string inputs,
or a locale the machine may lack).

Each kept model then gets ``make_inputs(model, shapes=..., seed=0)``, where ``shapes`` gives its dynamic
inputs the shipped inputs' shapes (what a user writes in ``shapes=``), and onnxruntime runs them.
Outcomes: ``accepted``; ``sentence`` (make_inputs refused with an InputError that names the input
and what to pass); ``rejected`` (onnxruntime failed on the generated inputs).

    python benchmarks/onnx_test_models.py [--seeds N]
"""
from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np


def data_root() -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def shipped_inputs(folder: str, session) -> dict:
    from onnx import TensorProto, numpy_helper

    feeds, names = {}, [i.name for i in session.get_inputs()]
    for i, path in enumerate(sorted(glob.glob(os.path.join(folder, "test_data_set_0", "input_*.pb")))):
        tensor = TensorProto()
        with open(path, "rb") as f:
            tensor.ParseFromString(f.read())
        feeds[tensor.name or names[i]] = numpy_helper.to_array(tensor)
    return feeds


def select(root: str | None = None) -> list[str]:
    """Model folders (relative to ``root``) that pass the selection rule above."""
    import onnxruntime as ort

    from pytest_trt.core.model import load_model_info

    root = root or data_root()
    ort.set_default_logger_severity(4)
    kept = []
    for model in sorted(glob.glob(os.path.join(root, "**", "model.onnx"), recursive=True)):
        folder = os.path.dirname(model)
        if not os.path.isdir(os.path.join(folder, "test_data_set_0")):
            continue
        try:
            load_model_info(model)
            session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            session.run(None, shipped_inputs(folder, session))
        except Exception:  # TrtCompareError (inputs pytest-trt cannot hold), or onnxruntime's own errors
            continue
        kept.append(os.path.relpath(folder, root))
    return kept


def measure(folders: list[str], root: str | None = None, seed: int = 0) -> list[tuple[str, str, str]]:
    """(folder, outcome, detail) per model: outcome is accepted, sentence or rejected."""
    import onnxruntime as ort

    from pytest_trt.errors import InputError
    from pytest_trt.core.generated_inputs import make_inputs
    from pytest_trt.core.model import load_model_info

    root = root or data_root()
    ort.set_default_logger_severity(4)
    results = []
    for rel in folders:
        folder = os.path.join(root, rel)
        info = load_model_info(os.path.join(folder, "model.onnx"))
        session = ort.InferenceSession(str(info.path), providers=["CPUExecutionProvider"])
        shipped = shipped_inputs(folder, session)
        shapes = {s.name: shipped[s.name].shape for s in info.inputs if s.is_dynamic and s.name in shipped}
        try:
            inputs = make_inputs(info, shapes=shapes, seed=seed)
        except InputError as exc:
            results.append((rel, "sentence", str(exc)))
            continue
        try:
            session.run(None, inputs)
        except Exception as exc:  # onnxruntime's own exception types
            results.append((rel, "rejected", str(exc).splitlines()[0][:300]))
            continue
        results.append((rel, "accepted", ""))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1, help="measure seeds 0..N-1 (default 1)")
    args = parser.parse_args(argv)
    folders = select()
    import onnx
    import onnxruntime

    print(f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}, numpy {np.__version__}: "
          f"{len(folders)} shipped test models kept by the selection rule")
    for seed in range(args.seeds):
        results = measure(folders, seed=seed)
        accepted = sum(outcome == "accepted" for _, outcome, _ in results)
        sentences = sum(outcome == "sentence" for _, outcome, _ in results)
        print(f"seed {seed}: accepted {accepted} / {len(results)} ({100 * accepted / len(results):.1f}%), "
              f"refused with a sentence {sentences}, rejected by onnxruntime {len(results) - accepted - sentences}")
        for rel, outcome, detail in results:
            if outcome != "accepted":
                print(f"  {outcome}: {rel}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
