"""model={"fp32": ..., "fp16": ...}: each precision's engine is built from the file that ships, the reference from fp32.

Real pytest runs on a PyTorch-exported MLP and its fp16 conversion (pytest-trt's casts, and ModelOpt AutoCast where
installed). The engine under test is a third-party backend (entry point) that runs the file it is given with
onnxruntime at any precision, so the checks run end to end on a CPU; it logs which file and ``convert`` option it got.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import onnx
import pytest

from pytest_trt.backends.convert import convert_file
from pytest_trt.core.model import load_model_info

from models import two_io_model
from shared import AUTOCAST_MISSING, INI, install_backend

MLP = Path(__file__).resolve().parents[1] / "data" / "torch" / "mlp.onnx"   # benchmarks/torch_models.py --width 32
BACKEND = """
import json, os
import numpy as np, onnxruntime as ort

class OrtFileBackend:
    name = "ortfile"
    def unavailable_reason(self): return None
    def precision_reason(self, precision): return None
    def describe(self): return {"backend": "ortfile", "version": "1.0"}
    def run(self, model, inputs, *, precision="fp32", options=None):
        with open(os.environ["ORTFILE_LOG"], "a") as log:
            log.write(json.dumps([precision, model.path.name, options["convert"]]) + "\\n")
        session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
"""
TEST = """
import pytest

@pytest.mark.trt_compare(model={"fp32": "model.onnx", "fp16": "model.fp16.onnx"}, precision=["fp32", "fp16", "bf16"],
                         shapes={"x": (4, 32)}, tolerances={"fp16": {"atol": 2e-3, "rtol": 2e-2}})
def test_mlp(trt_compare):
    trt_compare()
"""


@pytest.fixture
def shipped(pytester):
    """A repository with the fp32 export, the ortfile backend installed as a distribution, and ``run(*args)``."""
    site = install_backend(pytester.path / "site", "ortfile_backend", BACKEND, "ortfile", "OrtFileBackend")
    onnx.save(onnx.load(str(MLP)), str(pytester.path / "model.onnx"))
    pytester.makeini(INI)
    log = pytester.path / "engine.log"

    def run(*args):
        log.write_text("")
        proc = subprocess.run([sys.executable, "-m", "pytest", "--trt-backend=ortfile", "-p", "no:randomly", *args],
                              cwd=pytester.path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(site), "ORTFILE_LOG": str(log)})
        return proc, [json.loads(line) for line in log.read_text().splitlines()]
    return run


@pytest.mark.parametrize("converter", ["casts", pytest.param("autocast", marks=pytest.mark.skipif(
    AUTOCAST_MISSING is not None, reason=str(AUTOCAST_MISSING)))])
def test_each_precision_checks_its_own_file(pytester, shipped, converter):
    fp16 = pytester.path / "model.fp16.onnx"
    onnx.save(convert_file(pytester.path / "model.onnx", "float16", converter), str(fp16))
    pytester.makepyfile(test_mlp=TEST)
    proc, engine_runs = shipped("--update-golden")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # fp16 from the shipped file as it is; bf16 (no entry) from the fp32 file, converted where a build needs it
    assert engine_runs == [["fp32", "model.onnx", True], ["fp16", "model.fp16.onnx", False],
                           ["bf16", "model.onnx", True]]
    golden = pytester.path / "golden" / "test_mlp" / "test_mlp"
    recorded = {p: json.loads((golden / f"engine-ortfile-{p}.json").read_text())["model"] for p in ("fp32", "fp16")}
    assert recorded["fp16"] == {"file": "model.fp16.onnx", "sha256": load_model_info(fp16).sha256}
    assert recorded["fp32"] == {"file": "model.onnx", "sha256": load_model_info(pytester.path / "model.onnx").sha256}
    reference = json.loads((golden / "reference.json").read_text())["model"]
    assert reference["file"] == "model.onnx"
    errors = {p: json.loads((golden / f"engine-ortfile-{p}.json").read_text())["errors_vs_reference"]["y"]
              for p in ("fp32", "fp16")}
    assert errors["fp32"]["max_abs"] == 0 and 0 < errors["fp16"]["max_abs"] < 2e-3, errors  # the fp16 file's numbers

    # another fp16 file (same names, other weights) is named as what changed, for its engine golden only
    onnx.save(_nudged(onnx.load(str(fp16))), str(fp16))
    proc, _ = shipped()
    assert proc.returncode == 1, proc.stdout
    assert "test_mlp[fp16]" in proc.stdout and "the model changed since this golden was recorded" in proc.stdout
    assert "FAILED test_mlp.py::test_mlp[fp32]" not in proc.stdout and "FAILED test_mlp.py::test_mlp[bf16]" not in proc.stdout


def _nudged(model):
    """``model`` with its last initializer scaled by 1.5: same names and types, other outputs."""
    from onnx import numpy_helper

    last = model.graph.initializer[-1]
    last.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(last) * 1.5, last.name))
    return model


def test_a_file_that_is_not_the_same_model_fails_its_check(pytester, shipped):
    """An fp16 file with the right names but other weights: the fp16 check fails against the reference."""
    onnx.save(_nudged(convert_file(pytester.path / "model.onnx", "float16")), str(pytester.path / "model.fp16.onnx"))
    pytester.makepyfile(test_mlp=TEST)
    proc, _ = shipped("--update-golden")
    assert proc.returncode == 1
    assert "engine (ortfile, fp16) vs reference (onnxruntime): 1 of 1 outputs differ" in proc.stdout, proc.stdout
    assert "2 passed" in proc.stdout   # fp32 and bf16 check the fp32 file


def test_a_file_with_other_inputs_is_named(pytester, shipped):
    two_io_model(pytester.path / "model.fp16.onnx")
    pytester.makepyfile(test_mlp=TEST)
    proc, engine_runs = shipped("--update-golden")
    assert ("trt_compare model['fp16'] (model.fp16.onnx) does not have the inputs and outputs of model['fp32'] "
            "(model.onnx): input 'x' is missing, input 'a' is extra, input 'b' is extra, output 'y' is missing, "
            "output 's' is extra, output 'i' is extra; export both from the same model, or convert the fp32 file"
            in proc.stdout), proc.stdout
    assert ["fp16", "model.fp16.onnx", False] not in engine_runs and "2 passed" in proc.stdout


def test_marker_mistakes_fail_their_test_at_setup(pytester, shipped):
    pytester.makepyfile(test_mlp=textwrap.dedent("""
        import pytest

        @pytest.mark.trt_compare(model={"fp32": "model.onnx", "bf16": "model.onnx"}, precision=["fp32", "fp16"])
        def test_undeclared(trt_compare):
            trt_compare()

        @pytest.mark.trt_compare(model={"fp16": "model.onnx"}, precision="fp16")
        def test_no_fp32(trt_compare):
            trt_compare()
    """))
    proc, engine_runs = shipped()
    assert "test_mlp.py::test_undeclared: trt_compare model['bf16'] names a precision the marker does not test; " \
           "its precisions are: fp32, fp16 (add 'bf16' to precision= or remove the entry)" in proc.stdout, proc.stdout
    assert "test_mlp.py::test_no_fp32: trt_compare model={...} has no 'fp32' entry" in proc.stdout
    assert "2 errors" in proc.stdout and engine_runs == []
