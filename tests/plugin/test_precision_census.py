"""The precision census in real pytest runs: warning, strict failure, the marker's share, the summary's layers
column, JUnit properties, the engine golden's sidecar and the census change reported with drift.

TensorRT cannot run here, so the engine under test is a stand-in installed as a third-party backend (entry point):
it runs the model with onnxruntime and reports, as its ``census()``, TensorRT 8.6's own engine inspector JSON
(tests/data/census, recorded on a GPU) parsed by pytest-trt's real parser. Everything after the census is real.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared import INI, install_backend

DATA = Path(__file__).resolve().parents[1] / "data"
MLP = Path(__file__).resolve().parents[2] / "examples" / "models" / "mlp.onnx"
STAND_IN = """
import os
import onnxruntime as ort
from pytest_trt.backends.tensorrt.census import parse_engine_information

class CensusStandIn:
    name = "censused"
    def unavailable_reason(self): return None
    def precision_reason(self, precision): return None
    def describe(self): return {"backend": "censused", "version": "1.0"}
    def run(self, model, inputs, *, precision="fp32", options=None):
        session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
        return dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    def census(self):
        with open(os.environ["CENSUS_JSON"]) as f:
            return parse_engine_information(f.read()).summary()
"""
TEST = """
import pytest

@pytest.mark.trt_compare(model="mlp.onnx", precision="fp16", shapes={{"x": (4, 16)}}{extra})
def test_mlp(trt_compare):
    trt_compare()
"""
FP32_ONLY = DATA / "census" / "mlp.fp16.trt86.json"        # TensorRT kept fp32: 0 of 2 compute layers in fp16
ALL_FP16 = DATA / "census" / "wide_mlp.fp16.trt86.json"    # 4 of 4 compute layers in fp16


@pytest.fixture
def run(pytester):
    """``run(census_json, *args, extra="")``: pytest in a repository whose engine reports that census."""
    site = install_backend(pytester.path / "site", "census_stand_in", STAND_IN, "censused", "CensusStandIn")
    shutil.copy(MLP, pytester.path / "mlp.onnx")
    pytester.makeini(INI)

    def run(census_json, *args, extra=""):
        (pytester.path / "test_mlp.py").write_text(TEST.format(extra=extra))
        return subprocess.run([sys.executable, "-m", "pytest", "--trt-backend=censused", "-p", "no:randomly",
                               "--trt-summary=full", "-W", "default", *args], cwd=pytester.path,
                              capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(site), "CENSUS_JSON": str(census_json)})
    return run


def test_fp16_that_ran_in_fp32_warns_and_is_recorded_everywhere(pytester, run):
    proc = run(FP32_ONLY, "--update-golden", "--junitxml=junit.xml")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    sentence = ("fp16 requested, 0 of 2 compute layers run in half precision: this check compared an engine that "
                "runs in fp32")
    assert "TrtPrecisionWarning" in out and sentence in out, out
    assert "1 ran another precision than asked" in out
    row = next(line for line in out.splitlines() if line.startswith("  test_mlp.py::test_mlp "))
    assert " fp16 0/2 " in row, row
    assert f"  precision: test_mlp.py::test_mlp [fp16]: {sentence}" in out
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="trt_layers" value="fp32 2 of 2 compute layers; 2 movement"' in junit, junit
    assert 'name="trt_layers.fp32" value="2"' in junit and 'name="trt_precision_shortfall"' in junit
    sidecar = json.loads(next((pytester.path / "golden").rglob("engine-censused-fp16.json")).read_text())
    assert sidecar["producer"]["census"]["compute"] == {"fp32": 2}


def test_strict_fails_off_is_silent_and_realized_precision_says_nothing(run):
    strict = run(FP32_ONLY, "--update-golden", "--trt-precision-check=strict")
    assert strict.returncode == 1 and "precision (--trt-precision-check strict): fp16 requested, 0 of 2" in strict.stdout
    off = run(FP32_ONLY, "--trt-precision-check=off")
    assert off.returncode == 0 and "TrtPrecisionWarning" not in off.stdout, off.stdout
    realized = run(ALL_FP16, "--trt-precision-check=strict")
    assert realized.returncode == 0 and "TrtPrecisionWarning" not in realized.stdout
    assert " fp16 4/4 " in realized.stdout, realized.stdout


def test_marker_share_fails_the_check_and_session_share_warns(run):
    failing = run(FP32_ONLY, "--update-golden", extra=", min_precision_share=0.5")
    assert failing.returncode == 1, failing.stdout
    assert "(the marker asks min_precision_share=0.5)" in failing.stdout
    passing = run(ALL_FP16, extra=", min_precision_share=1.0")
    assert passing.returncode == 0, passing.stdout
    bad = run(ALL_FP16, extra=", min_precision_share=2")
    assert bad.returncode == 1 and "trt_compare min_precision_share=2 must be a number from 0 to 1" in bad.stdout
    usage = run(ALL_FP16, "--trt-precision-check=maybe")
    assert usage.returncode == 4 and "--trt-precision-check 'maybe' is unknown; use warn, strict or off" in usage.stderr
    ini = run(ALL_FP16, "-o", "trt_precision_check=Maybe")   # the sentence names where the value came from
    assert ini.returncode == 4 and "ini trt_precision_check 'maybe' is unknown" in ini.stderr, ini.stderr
    assert run(ALL_FP16, "--trt-precision-check=STRICT").returncode == 0
    share = run(ALL_FP16, "-o", "trt_min_precision_share=50")
    assert ("ini trt_min_precision_share '50' is not a number from 0 to 1 (a share, not a percent); use e.g. "
            "--trt-min-precision-share=0.5") in share.stderr, share.stderr


def test_census_change_since_the_golden_is_reported_with_drift(run):
    assert run(ALL_FP16, "--update-golden").returncode == 0
    now = run(FP32_ONLY, "--trt-precision-check=off")
    assert now.returncode == 0, now.stdout
    assert ("drift: test_mlp.py::test_mlp [fp16]: layer precisions changed since the engine golden was recorded: "
            "fp16 4 of 4 compute layers; 4 movement -> fp32 2 of 2 compute layers; 2 movement") in now.stdout, now.stdout
    assert "precision: test_mlp.py" not in now.stdout   # --trt-precision-check off: no shortfall line either
    assert "1 passed though their engine's layer precisions changed (--update-golden records the new census)" in \
        now.stdout and "  census changed: test_mlp/test_mlp/engine-censused-fp16.npz" in now.stdout, now.stdout
    strict = run(FP32_ONLY, "--trt-precision-check=off", "--trt-strict-drift")
    assert strict.returncode == 1
    # accepting the new census: --update-golden re-records the engine golden, and the drift line is gone
    accepted = run(FP32_ONLY, "--trt-precision-check=off", "--update-golden")
    assert accepted.returncode == 0 and "updated: test_mlp/test_mlp/engine-censused-fp16.npz" in accepted.stdout
    after = run(FP32_ONLY, "--trt-precision-check=off")
    assert after.returncode == 0 and "layer precisions changed" not in after.stdout, after.stdout
