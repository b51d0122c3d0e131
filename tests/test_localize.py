"""Localization end to end: the eager ``localize``, and the plugin localizing failing checks (the failure message,
report.json, localization.txt, JUnit, --trt-localize*, the marker's ``localize=``), on real models run by onnxruntime.

The engines under test are onnxruntime's fp16 CPU preview (its ``overflow_model`` overflows in the MatMul
``scores``) and test doubles installed as third-party backends: ``perturb`` (onnxruntime on the model with ONE
chosen tensor shifted, so the right answer is known) and backends without a working ``probe``.
"""
import json
import os
import re
import subprocess
import sys
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import pytest_trt
from pytest_trt.backends import onnxruntime as ort_backend
from pytest_trt.backends import registry
from pytest_trt.core.localize import localize
from pytest_trt.errors import BackendError, InputError
from pytest_trt.reports.localization import full_table, message

from models import _model, _save, overflow_model
from shared import install_backend

ROOT = Path(__file__).resolve().parents[1]
ATTENTION = ROOT / "examples" / "models" / "attention.onnx"   # unnamed nodes: LayerNormalization#0, MatMul#1 (q), ...
MLP = ROOT / "examples" / "models" / "mlp.onnx"
TOLERANCE = {"atol": 1e-2, "rtol": 1e-2, "input_range": (0, 1)}


def mlp10(path) -> Path:
    """x[4,32] -> ten MatMul layers fc0..fc9 (outputs h0..h8, then y) with Relu relu0..relu8 between them."""
    rng = np.random.default_rng(3)
    nodes, inits, prev = [], [], "x"
    for i in range(10):
        inits.append(numpy_helper.from_array((rng.standard_normal((32, 32)) / 4).astype(np.float32), f"w{i}"))
        out = "y" if i == 9 else f"h{i}"
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [out], name=f"fc{i}"))
        if i < 9:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            prev = f"r{i}"
    graph = helper.make_graph(nodes, "mlp10", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 32])], inits)
    return _save(_model(graph), path)


def chain(path, pairs: int = 60, n: int = 256) -> Path:
    """x[n,n] -> ``pairs`` times (Mul by w, Add b): 2*pairs nodes, each output n*n float32 (256 KiB at n=256)."""
    inits = [numpy_helper.from_array(np.full((n, n), 0.5, np.float32), "w"),
             numpy_helper.from_array(np.full(n, 0.5, np.float32), "b")]
    nodes, prev = [], "x"
    for i in range(pairs):
        out = "y" if i == pairs - 1 else f"a{i}"
        nodes += [helper.make_node("Mul", [prev, "w"], [f"m{i}"], name=f"mul{i}"),
                  helper.make_node("Add", [f"m{i}", "b"], [out], name=f"add{i}")]
        prev = out
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], inits)
    return _save(_model(graph), path)


# ------------------------------------------------------------------------------------------------- eager API

def test_localize_names_the_overflowing_matmul_and_the_path_to_the_output(tmp_path):
    loc = localize(str(overflow_model(tmp_path / "o.onnx")), precision="fp16", **TOLERANCE)
    assert (loc.first.node, loc.first.op, loc.first.name) == ("scores", "MatMul", "logits")
    assert loc.first.nonfinite > 0 and loc.first.share == float("inf")
    assert loc.samples == [0, 1, 2] and [e.node for e in loc.firsts] == ["scores"] * 3
    assert loc.preview and loc.precision == "fp16" and loc.reproduced is True
    assert [e.name for e in loc.tensors] == ["h", "r", "rs", "logits", "out"] and loc.counts == {"compared": 5}
    assert all(e.passed for e in loc.tensors[:3]) and not any(e.passed for e in loc.tensors[3:])
    assert [e.name for e in loc.path] == ["logits", "out"] and loc.failing_output == "out"
    assert [(name, e is None) for name, e in loc.inputs] == [("rs", False), ("w2", True)]
    text = message(loc)
    assert text.startswith("first diverging node: scores (MatMul); first in 3 of 3 samples\n")
    assert "(CPU preview, not a TensorRT result)" in text and "its outputs fail there as well" in text
    row = next(line for line in full_table(loc).splitlines() if line.startswith("scores "))
    assert "<- first" in row


def test_localize_with_the_callers_inputs_compares_one_sample(tmp_path):
    x = np.random.default_rng(9).uniform(0, 1, (4, 64)).astype(np.float32)
    loc = localize(str(overflow_model(tmp_path / "o.onnx")), {"x": x}, precision="fp16", seeds=5, **TOLERANCE)
    assert loc.samples == [-1] and loc.first.node == "scores"
    assert loc.notes == ["one sample: the test's own inputs (generated samples could leave their domain)"]
    assert message(loc).startswith("first diverging node: scores (MatMul)\n")


def test_localize_refuses_what_it_cannot_do_in_one_sentence(tmp_path):
    model = str(overflow_model(tmp_path / "o.onnx"))
    with pytest.raises(BackendError) as info:
        localize(model, precision="int8")
    assert str(info.value).startswith("backend 'onnxruntime' cannot localize int8: onnxruntime runs the model as")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"^localization needs at least one sample; got seeds=0$"):
        localize(model, seeds=0)


def test_localize_is_part_of_the_eager_api():
    assert pytest_trt.localize is localize


def test_localize_takes_a_path_relative_to_the_working_directory(tmp_path, monkeypatch):
    overflow_model(tmp_path / "o.onnx")
    monkeypatch.chdir(tmp_path)
    assert localize("o.onnx", precision="fp16", seeds=1, **TOLERANCE).first.node == "scores"


# ------------------------------------------------------------------------------------------------- memory bound

TENSOR = 256 * 256 * 4        # bytes of one tensor of ``chain``


@pytest.fixture(scope="module")
def chained(tmp_path_factory):
    """chain(): 120 nodes, 120 observable tensors of 256 KiB: 30 MiB per side, 60 MiB for both."""
    return str(chain(tmp_path_factory.mktemp("chain") / "chain.onnx"))


@pytest.fixture
def traced_fetch(monkeypatch):
    """onnxruntime's output arrays wrap its own memory, which tracemalloc does not see: copy each fetched tensor
    into a numpy-owned array (traced) and drop onnxruntime's, so tracemalloc measures what a pass holds."""
    fetch = ort_backend._OrtSample.fetch
    monkeypatch.setattr(ort_backend._OrtSample, "fetch",
                        lambda self, names: {k: np.array(v, copy=True) for k, v in fetch(self, names).items()})


def test_a_small_memory_bound_splits_the_comparison_into_passes(chained, traced_fetch):
    total = 120 * TENSOR * 2
    tracemalloc.start()
    try:
        loc = localize(chained, precision="fp32", seeds=1, memory=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert loc.counts == {"compared": 120} and loc.first is None
    assert loc.passes > 1
    assert peak < 0.25 * total, f"{peak / 2**20:.1f} MiB traced at most of {total / 2**20:.0f} MiB in all"


def test_no_pass_holds_more_than_the_memory_bound(chained):
    loc = localize(chained, precision="fp32", seeds=1, memory=4)
    assert loc.peak_bytes <= (4 << 20) + 2 * TENSOR


def test_a_large_memory_bound_compares_in_one_pass(chained):
    loc = localize(chained, precision="fp32", seeds=1, memory=1024)
    assert loc.passes == 1 and loc.peak_bytes == 120 * TENSOR * 2


RESIDENT = """
import sys
from pytest_trt.backends import onnxruntime as ort_backend
from pytest_trt.core.localize import localize

def rss():
    with open("/proc/self/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0]) * 1024

localize(sys.argv[1], precision="fp32", seeds=1, memory=1024)   # imports and first allocations done
fetch, resident = ort_backend._OrtSample.fetch, []

def measured(self, names):
    got = fetch(self, names)
    resident.append(rss())
    return got

ort_backend._OrtSample.fetch = measured
before = rss()
localize(sys.argv[1], precision="fp32", seeds=1, memory=float(sys.argv[2]))
print(max(resident) - before)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the resident set size from /proc")
def test_the_process_grows_less_than_all_intermediates_under_a_small_bound(chained):
    """In a fresh process (memory freed by earlier tests would hide the growth): the resident set while passes run."""
    proc = subprocess.run([sys.executable, "-c", RESIDENT, chained, "4"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    grown = int(proc.stdout.split()[-1])
    assert grown < 120 * TENSOR * 2, f"grew {grown / 2**20:.0f} MiB"


def growing(path) -> Path:
    """20 small tensors ([4]) then 20 large ones ([256,256]): the later passes meet tensors far above the mean."""
    inits = [numpy_helper.from_array(np.full(4, 0.5, np.float32), "b"),
             numpy_helper.from_array(np.full((256, 256, 1), 0.5, np.float32), "w")]
    nodes, prev = [], "x"
    for i in range(20):
        nodes.append(helper.make_node("Add", [prev, "b"], [f"s{i}"], name=f"small{i}"))
        prev = f"s{i}"
    nodes.append(helper.make_node("Mul", ["w", "s19"], ["l0"], name="widen"))   # [256,256,1] * [4]: [256,256,4]
    for i in range(1, 20):
        nodes.append(helper.make_node("Add", [f"l{i - 1}", "b"], ["y" if i == 19 else f"l{i}"], name=f"large{i}"))
    graph = helper.make_graph(nodes, "growing", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [256, 256, 4])], inits)
    return _save(_model(graph), path)


def test_the_memory_bound_holds_when_tensors_grow_along_the_graph(tmp_path):
    loc = localize(str(growing(tmp_path / "g.onnx")), precision="fp32", seeds=1, memory=4)
    assert loc.counts == {"compared": 40}
    assert loc.peak_bytes <= (4 << 20) + 2 * (256 * 256 * 4 * 4)


# ------------------------------------------------------------------------------------------------- plugin

TESTS = """
from pathlib import Path

import numpy as np
import pytest

MARK = dict(model="m.onnx", atol=1e-2, rtol=1e-2, input_range=(0, 1))


@pytest.mark.trt_compare(precision="fp16", **MARK)
def test_auto(trt_compare):
    trt_compare()


@pytest.mark.trt_compare(precision="fp16", localize=False, **MARK)
def test_never(trt_compare):
    trt_compare()


@pytest.mark.trt_compare(precision="fp16", localize=True, **MARK)
def test_forced(trt_compare):
    trt_compare()


@pytest.mark.trt_compare(precision="fp32", localize=True, **MARK)
def test_passing(trt_compare):
    r = trt_compare()
    assert r.passed and r.localization.first is None
    assert r.localization.counts == {"compared": 5} and r.localization.passes == 1


@pytest.mark.trt_compare(precision="fp16", **MARK)
def test_given_inputs(trt_compare):
    trt_compare({"x": np.random.default_rng(7).uniform(0, 1, (4, 64)).astype(np.float32)})


@pytest.mark.trt_compare(model="chain.onnx", precision="fp32", localize=True)
def test_chain(trt_compare):
    Path("passes.txt").write_text(str(trt_compare().localization.passes))
"""


def sections(result) -> dict:
    """Each failed test's section of the terminal output, by test name."""
    parts = re.split(r"^_{3,} (\S+) _{3,}$", result.stdout.str(), flags=re.M)
    return {name: re.split(r"^=+ ", text, flags=re.M)[0] for name, text in zip(parts[1::2], parts[2::2])}


def artifact(repo, test, name) -> Path:
    """A failed check's artifact (art/<module>/<test>/<precision>/<name>), or a path that does not exist."""
    return next((repo.path / "art" / "test_loc" / test).rglob(name), repo.path / "art" / "missing")


def report(repo, test) -> dict:
    return json.loads(artifact(repo, test, "report.json").read_text())


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """No PNG plots among the artifacts (their rendering would dominate these runs; tests/reports test them)."""
    from pytest_trt.reports import artifacts

    monkeypatch.setattr(artifacts, "have_matplotlib", lambda: False)


@pytest.fixture
def loc_repo(repo):
    overflow_model(repo.path / "m.onnx")
    chain(repo.path / "chain.onnx", pairs=20)      # 40 tensors of 256 KiB
    repo.makepyfile(test_loc=TESTS)
    return repo


def run(repo, *args):
    return repo.runpytest("--trt-backend=onnxruntime", "-p", "no:randomly", "--update-golden", "--trt-artifacts=art",
                          *args)


def test_failing_checks_name_their_first_diverging_node_everywhere(loc_repo):
    result = run(loc_repo, "--junitxml=junit.xml")
    result.assert_outcomes(passed=2, failed=4)
    out = sections(result)
    assert set(out) == {"test_auto", "test_never", "test_forced", "test_given_inputs"}
    auto = out["test_auto"]
    assert "engine (onnxruntime preview, fp16) vs reference (onnxruntime): 1 of 1 outputs differ" in auto
    assert "first diverging node: scores (MatMul); first in 3 of 3 samples\n" in auto
    assert "error along the path to output 'out':" in auto
    assert "localized with onnxruntime " in auto and " fp16 (CPU preview, not a TensorRT result)" in auto
    assert "localization.txt" in auto                       # among the artifacts the message lists
    data = report(loc_repo, "test_auto")["localization"]
    assert data["first"]["node"] == "scores" and data["first"]["op"] == "MatMul" and data["preview"] is True
    assert [e["name"] for e in data["path"]] == ["logits", "out"] and data["failing_output"] == "out"
    assert data["samples"] == [0, 1, 2] and data["first_by_sample"] == ["scores"] * 3
    table = artifact(loc_repo, "test_auto", "localization.txt").read_text()
    assert table.startswith("first diverging node: scores (MatMul)")
    assert re.search(r"^scores +MatMul +logits +compared .* <- first", table, flags=re.M), table

    never = out["test_never"]                                # the marker's localize=False
    assert "1 of 1 outputs differ" in never and "first diverging node" not in never
    assert report(loc_repo, "test_never")["localization"] is None
    assert artifact(loc_repo, "test_never", "report.json").exists()
    assert not artifact(loc_repo, "test_never", "localization.txt").exists()
    assert "first diverging node: scores (MatMul); first in 3 of 3 samples" in out["test_forced"]

    given = out["test_given_inputs"]                         # the test's inputs: one sample, and a note says so
    assert "first diverging node: scores (MatMul)\n" in given and " of 1 samples" not in given
    assert "note: one sample: the test's own inputs (generated samples could leave their domain)" in given
    assert report(loc_repo, "test_given_inputs")["localization"]["samples"] == [-1]

    properties = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
                  for case in ET.parse(loc_repo.path / "junit.xml").iter("testcase")}
    assert properties["test_auto"]["trt_first_diverging_node"] == "scores (MatMul)"
    assert "trt_first_diverging_node" not in properties["test_never"]
    assert "trt_first_diverging_node" not in properties["test_passing"]   # localized, nothing diverged
    summary = result.stdout.str().split("pytest-trt ===")[-1]
    assert "  diverges: test_loc.py::test_auto [fp16]: first at scores (MatMul)" in summary
    assert "test_never [" not in summary.split("diverges:", 1)[-1]
    assert int((loc_repo.path / "passes.txt").read_text()) <= 2   # the default 256 MiB: all 40 tensors fit
    row = next(line for line in result.stdout.lines if line.startswith("  test_loc.py::test_auto "))
    assert re.search(r" onnxruntime \S+ preview ", row), row


def test_localize_off_one_seed_and_a_small_memory_bound(loc_repo):
    result = run(loc_repo, "--trt-localize=off", "--trt-localize-seeds=1", "--trt-localize-memory=1")
    result.assert_outcomes(passed=2, failed=4)               # test_passing: localize=True still localizes
    out = sections(result)
    for test in ("test_auto", "test_never", "test_given_inputs"):
        assert "1 of 1 outputs differ" in out[test] and "first diverging node" not in out[test], out[test]
        assert report(loc_repo, test)["localization"] is None
    forced = out["test_forced"]                              # localize=True overrides --trt-localize=off
    assert "first diverging node: scores (MatMul)\n" in forced and "samples" not in forced.split("\n")[0]
    assert not re.search(r"first in \d+ of \d+ samples", forced)
    data = report(loc_repo, "test_forced")["localization"]
    assert data["samples"] == [0] and data["first_by_sample"] == ["scores"]
    assert "--trt-localize" not in forced                   # no complaint about the option it overrode
    assert int((loc_repo.path / "passes.txt").read_text()) > 5  # 1 MiB: a few 256 KiB tensors per pass


@pytest.mark.parametrize("option, sentence", [
    ("--trt-localize=maybe", "--trt-localize 'maybe' is unknown; use auto or off"),
    ("--trt-localize-seeds=0",
     "--trt-localize-seeds '0' is not a number from 1 to 1000; use e.g. --trt-localize-seeds=3"),
    ("--trt-localize-seeds=2.5", "--trt-localize-seeds 2.5 is not a whole number; use e.g. --trt-localize-seeds=3"),
])
def test_bad_options_are_usage_errors(loc_repo, option, sentence):
    result = run(loc_repo, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [f"ERROR: {sentence}"]


def test_marker_localize_must_be_a_bool(repo):
    overflow_model(repo.path / "m.onnx")
    repo.makepyfile(test_bad="""
        import pytest
        @pytest.mark.trt_compare(model="m.onnx", precision="fp16", localize="yes")
        def test_x(trt_compare):
            trt_compare()
    """)
    result = run(repo)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["test_bad.py::test_x: trt_compare localize='yes' must be True (localize this test's "
                                 "engine-vs-reference comparison even when it passes or --trt-localize is off), "
                                 "False (never) or None (--trt-localize decides)"])


# ------------------------------------------------------------------------------------------ third-party backends

PERTURB = '''
"""A TEST DOUBLE, not an engine: onnxruntime running the model with one chosen intermediate tensor shifted.

$PERTURB maps a model file's name to the tensor to shift (models not named there run as written). The tensor's
producer writes to "<tensor>__unperturbed" and an Add of a constant (varying along the last axis, so Softmax and
LayerNormalization do not cancel it) gives the tensor back under its own name: every name of the original graph
holds a value, only the chosen one and what depends on it differ.
"""
import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend, OnnxRuntimeProbe
from pytest_trt.core.model import load_model_info


class PerturbBackend:
    name = "perturb"

    def unavailable_reason(self):
        return None

    def precision_reason(self, precision):
        return None if precision == "fp32" else "the perturb test double runs fp32 only"

    def describe(self):
        return {"backend": "perturb", "version": "1.0"}

    def _perturbed(self, model):
        tensor = json.loads(os.environ["PERTURB"]).get(model.path.name)
        if tensor is None:
            return model
        proto = onnx.load(str(model.path))
        inferred = onnx.shape_inference.infer_shapes(proto).graph
        shape = next(v for v in (*inferred.value_info, *inferred.output) if v.name == tensor).type.tensor_type.shape
        delta = (np.arange(shape.dim[-1].dim_value) % 3 + 1).astype(np.float32) * 0.5
        nodes = []
        for node in proto.graph.node:
            nodes.append(node)
            if tensor in node.output:
                node.output[list(node.output).index(tensor)] = tensor + "__unperturbed"
                nodes.append(helper.make_node("Add", [tensor + "__unperturbed", tensor + "__delta"], [tensor],
                                              name="perturbation"))
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        proto.graph.initializer.append(numpy_helper.from_array(delta, tensor + "__delta"))
        path = model.path.with_name(model.path.stem + ".perturbed.onnx")
        onnx.save(proto, str(path))
        return load_model_info(path)

    def run(self, model, inputs, *, precision="fp32", options=None):
        return OnnxRuntimeBackend().run(self._perturbed(model), inputs)

    def probe(self, model, *, precision="fp32", options=None, tensors=()):
        return OnnxRuntimeProbe(self._perturbed(model), ("CPUExecutionProvider",), "fp32", None)
'''

PERTURBED_TESTS = """
import pytest


@pytest.mark.trt_compare(model="small.onnx", atol=1e-3, rtol=1e-3, input_range=(0, 1))
def test_small(trt_compare):
    trt_compare()


@pytest.mark.trt_compare(model="attention.onnx", shapes={"tokens": (1, 8, 32)}, atol=1e-3, rtol=1e-3)
def test_attention(trt_compare):
    trt_compare()


@pytest.mark.trt_compare(model="mlp10.onnx", atol=1e-3, rtol=1e-3)
def test_mlp10(trt_compare):
    trt_compare()


@pytest.mark.trt_compare(model="mlp.onnx", shapes={"x": (4, 16)}, atol=1e-3, rtol=1e-3)
def test_untouched(trt_compare):
    trt_compare()
"""


@pytest.fixture
def installed(repo, monkeypatch):
    """``installed(module, source, name, cls)``: a third-party backend on this process's path (in-process runs)."""
    monkeypatch.setattr(registry, "_instances", dict(registry._instances))  # no instance outlives this test

    def install(module, source, name, cls):
        monkeypatch.syspath_prepend(str(install_backend(repo.path / f"site-{name}", module, source, name, cls)))
    return install


def test_a_perturbed_tensor_is_localized_to_its_node_at_any_depth(repo, installed, monkeypatch):
    installed("perturb_test_double", PERTURB, "perturb", "PerturbBackend")
    overflow_model(repo.path / "small.onnx")
    mlp10(repo.path / "mlp10.onnx")
    for source in (ATTENTION, MLP):
        onnx.save(onnx.load(str(source)), str(repo.path / source.name))
    monkeypatch.setenv("PERTURB", json.dumps({"small.onnx": "r", "attention.onnx": "q", "mlp10.onnx": "h5"}))
    repo.makepyfile(test_loc=PERTURBED_TESTS)
    result = repo.runpytest("--trt-backend=perturb", "-p", "no:randomly", "--update-golden", "--trt-artifacts=art")
    result.assert_outcomes(passed=1, failed=3)              # unperturbed, the double computes what onnxruntime does
    out = sections(result)
    expected = {"test_small": ("act", "Relu", ["r", "rs", "logits", "out"]),
                "test_attention": ("MatMul#1", "MatMul", ["q", "s", "ss", "a", "ctx", "out"]),
                "test_mlp10": ("fc5", "MatMul", ["h5", "r5", "h6", "r6", "h7", "r7", "h8", "r8", "y"])}
    for test, (node, op, path) in expected.items():
        assert f"first diverging node: {node} ({op}); first in 3 of 3 samples\n" in out[test], out[test]
        assert ("localized with perturb 1.0 fp32 through graph outputs (onnxruntime); its outputs fail there as well"
                in out[test])
        data = report(repo, test)["localization"]
        assert [e["name"] for e in data["path"]] == path, test
        tensors = data["tensors"]
        first = next(i for i, e in enumerate(tensors) if e["node"] == node)
        assert first > 0 and all(e["max_abs"] == 0 and e["passed"] for e in tensors[:first]), test
        assert data["preview"] is False and "(CPU preview" not in out[test]


NO_PROBE = '''
"""A TEST DOUBLE engine without probe(): onnxruntime's fp16 preview through the plain Backend protocol."""
from pytest_trt.backends.onnxruntime import OnnxRuntimeBackend


class NoProbeBackend:
    name = "noprobe"

    def unavailable_reason(self):
        return None

    def precision_reason(self, precision):
        return None

    def describe(self):
        return {"backend": self.name, "version": "1.0"}

    def run(self, model, inputs, *, precision="fp32", options=None):
        return OnnxRuntimeBackend().run(model, inputs, precision=precision, options=options)


class BrokenProbeBackend(NoProbeBackend):
    name = "brokenprobe"

    def probe(self, model, *, precision="fp32", options=None, tensors=()):
        raise RuntimeError("the debug build is out of memory")
'''


@pytest.mark.parametrize("backend, cls, why", [
    ("noprobe", "NoProbeBackend", "backend 'noprobe' cannot expose intermediate tensors (it has no probe()), so "
                                  "nothing can be localized with it"),
    ("brokenprobe", "BrokenProbeBackend", "RuntimeError: the debug build is out of memory"),
], ids=["without-probe", "probe-raises"])
def test_an_engine_that_cannot_be_localized_still_fails_its_check(repo, installed, backend, cls, why):
    installed(f"{backend}_test_double", NO_PROBE, backend, cls)
    overflow_model(repo.path / "m.onnx")
    repo.makepyfile(test_loc=TESTS)
    result = repo.runpytest(f"--trt-backend={backend}", "-p", "no:randomly", "--update-golden",
                            "--trt-artifacts=art", "-k", "test_auto")
    result.assert_outcomes(failed=1)
    auto = sections(result)["test_auto"]
    assert f"engine ({backend}, fp16) vs reference (onnxruntime): 1 of 1 outputs differ" in auto
    assert f"first diverging node: not localized ({why})\n" in auto, auto
    data = report(repo, "test_auto")
    assert data["localization"] is None and data["localization_problem"] == why
    assert data["comparisons"]["engine-vs-reference"]["passed"] is False


def test_eager_localize_checks_its_arguments_like_the_marker_in_its_own_words(tmp_path, monkeypatch):
    model = str(overflow_model(tmp_path / "o.onnx"))
    with pytest.raises(InputError, match=r"^localize: model file 'nope.onnx' does not exist \(looked at '.*nope.onnx'\)$"):
        localize("nope.onnx")
    with pytest.raises(pytest_trt.TrtCompareError, match=r"^localize tolerances\['yy'\] names neither a precision nor "
                                                           r"an output of o.onnx"):
        localize(model, tolerances={"yy": {"atol": 1e-5}})
    with pytest.raises(pytest_trt.TrtCompareError, match=r"^localize precision 'half' is unknown"):
        localize(model, precision="half")
    for bad in (0, -5, "64", True):
        with pytest.raises(InputError, match=r"must be a positive number of MiB"):
            localize(model, memory=bad)


def test_a_tensor_larger_than_the_bound_is_compared_alone_with_a_note(tmp_path):
    loc = localize(str(overflow_model(tmp_path / "o.onnx")), precision="fp16", seeds=1, memory=0.0001, **TOLERANCE)
    assert loc.passes == loc.counts["compared"] == 5
    assert any("over the 0.0001 MiB bound" in n for n in loc.notes)


def test_a_landmark_names_the_overflow_when_an_earlier_node_diverges_first(tmp_path):
    """A tolerance tight enough that fp16 rounding of 'rs' already diverges: the first node is 'scale', and the
    message still names where Inf first appears ('scores')."""
    loc = localize(str(overflow_model(tmp_path / "o.onnx")), precision="fp16", seeds=1, atol=1e-4, rtol=1e-4,
                   input_range=(0, 1))
    text = message(loc)
    assert loc.first.node != "scores" and loc.nonfinite.node == "scores"
    assert "first NaN/Inf: scores (MatMul), tensor 'logits': " in text and "(overflow?)" in text
