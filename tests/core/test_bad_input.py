"""The bad-input catalogue: each case asserts the exact sentence a user reads (problem and fix).

Marker arguments are checked through the same parser collection uses (the plugin prefixes the test id;
plugin/test_hooks.py shows that prefix); files, models, inputs and goldens through the real functions.
Marker arguments are also fuzzed: whatever a user writes, the answer is a SpecError, never a traceback.
"""
import errno

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import pytest_trt
from pytest_trt import compare
from pytest_trt.errors import BackendError, GoldenError, InputError, ModelError, SpecError
from pytest_trt.goldens.store import write_golden
from pytest_trt.core.generated_inputs import make_inputs
from pytest_trt.core.inputs import prepare_user_inputs
from pytest_trt.core.model import load_model_info
from pytest_trt.core.spec import ARGUMENTS, parse_marker

from models import scale_model, two_io_model

MARKER_CASES = [
    ({'atol': -1},
     'trt_compare atol=-1 is not a non-negative number; use e.g. atol=1e-3'),
    ({'rtol': 'big'},
     "trt_compare rtol='big' is not a non-negative number; use e.g. rtol=1e-3"),
    ({"atol": float("nan")},
     'trt_compare atol=nan is not a non-negative number; use e.g. atol=1e-3'),
    ({'atol': True},
     'trt_compare atol=True is not a non-negative number; use e.g. atol=1e-3'),
    ({'precision': 'fp64'},
     "trt_compare precision 'fp64' is unknown (did you mean 'fp16'?); valid precisions are: fp32, tf32, fp16, bf16, int8, fp8"),
    ({'precision': 'fp61'},
     "trt_compare precision 'fp61' is unknown (did you mean 'fp16'?); valid precisions are: fp32, tf32, fp16, bf16, int8, fp8"),
    ({'precision': []},
     'trt_compare precision=[] must be a precision name or a non-empty list of them; valid precisions are: fp32, tf32, fp16, bf16, int8, fp8'),
    ({'precision': ['fp16', 'fp16']},
     "trt_compare precision=['fp16', 'fp16'] lists a precision twice; list each once"),
    ({'seed': -3},
     'trt_compare seed=-3 is not a non-negative integer; use e.g. seed=0'),
    ({'seed': 1.5},
     'trt_compare seed=1.5 is not a non-negative integer; use e.g. seed=0'),
    ({'outputs': [1]},
     "trt_compare outputs=[1] must be a list of output names, e.g. outputs=['logits']"),
    ({'convention': 'numpy'},
     "trt_compare convention='numpy' is unknown; use one of: allclose, either"),
    ({'equal_nan': 'yes'},
     "trt_compare equal_nan='yes' is not True or False"),
    ({'shapes': [4, 16]},
     "trt_compare shapes=[4, 16] must be a dict {input name: shape}, e.g. shapes={'x': (4, 16)}"),
    ({'shapes': {'x': (4, 0)}},
     "trt_compare shapes['x'] = (4, 0) is not a tuple of positive ints; use e.g. (4, 16)"),
    ({'shapes': {'x': {'min': (1,), 'opt': (4,)}}},
     "trt_compare shapes['x'] must have exactly the keys 'min', 'opt' and 'max', got ['min', 'opt']"),
    ({'shapes': {'x': {'min': (4,), 'opt': (2,), 'max': (8,)}}},
     "trt_compare shapes['x']: dim 0 needs min <= opt <= max, got 4, 2, 8"),
    ({'input_range': (1, 0)},
     'trt_compare input_range = (1, 0) is not (low, high) with low < high; use e.g. (-1.0, 1.0)'),
    ({'tolerances': {'atol': 0.001}},
     "tolerances has a bare field 'atol'; pass test-wide values as atol=... beside tolerances= and use tolerances for per-precision or per-output sections"),
    ({'tolerances': {'fp16': {'atl': 1}}},
     "tolerances['fp16'] has unknown field 'atl'; valid fields are: atol, rtol, convention, equal_nan, cosine, max_abs, mean_abs, median_abs, percentile, elementwise (or a per-output dict)"),
    ({'tolerances': {'fp16': {'y': {'rtol': -1}}}},
     "tolerances['fp16']['y'] rtol=-1 is not a non-negative number; use e.g. rtol=1e-3"),
    ({'tolerances': {'y': {'y2': {'atol': 1}}}},
     "tolerances['y'] has unknown field 'y2'; valid fields are: atol, rtol, convention, equal_nan, cosine, max_abs, mean_abs, median_abs, percentile, elementwise"),
    ({'tolerances': {'y': {'cosine': 2}}},
     "tolerances['y'] cosine=2 is not a similarity in [-1, 1]; use e.g. cosine=0.99"),
    ({'tolerances': {'y': {'percentile': (101, 1)}}},
     "tolerances['y'] percentile=(101, 1) is not (q, limit) with 0 <= q <= 100 and limit >= 0; use e.g. percentile=(99, 1e-2)"),
    ({'tolerances': [1]},
     "tolerances=[1] must be a dict keyed by precision or output name, e.g. tolerances={'fp16': {'atol': 1e-2}, 'logits': {'rtol': 1e-3}}"),
    ({'atoll': 1},
     "trt_compare got unknown argument 'atoll' (did you mean 'atol'?); valid arguments are: model, atol, rtol, precision, tolerances, shapes, seed, outputs, input_range, convention, equal_nan, build, min_precision_share, localize"),
    ({'model': 3},
     "trt_compare model=3 is not a path; give the .onnx file's path as a string"),
    ({'build': {'workspace': 'lots'}},
     "trt_compare build workspace='lots' is not a positive size; use bytes or e.g. '512M', '2G'"),
    ({'build': 5},
     "trt_compare build=5 must be a dict of builder options, e.g. build={'workspace': '1G', 'optimization_level': 3}"),

]


@pytest.mark.parametrize("kwargs, sentence", MARKER_CASES)
def test_marker_argument(model, kwargs, sentence):
    with pytest.raises(SpecError) as info:
        parse_marker((), {"model": str(model), **kwargs})
    assert str(info.value) == sentence


def _error(call) -> str:
    with pytest.raises((InputError, ModelError, GoldenError, SpecError, BackendError)) as info:
        call()
    return str(info.value)


def test_model_files(tmp_path):
    (tmp_path / "text.onnx").write_text("not a model")
    (tmp_path / "empty.onnx").write_bytes(b"")
    assert _error(lambda: load_model_info(tmp_path / "text.onnx")) == (
        f"model {str(tmp_path / 'text.onnx')!r} is not a valid ONNX file (unknown wire type 6); "
        "re-export it or check that it is not a Git LFS pointer")
    assert _error(lambda: load_model_info(tmp_path / "empty.onnx")) == (
        f"model {str(tmp_path / 'empty.onnx')!r} is empty; re-export it or check that it is not a Git LFS pointer")
    with pytest.raises(SpecError) as info:
        parse_marker(("nope.onnx",), {}, tmp_path / "t", tmp_path)
    assert str(info.value) == (
        f"trt_compare model 'nope.onnx' not found (looked at {str(tmp_path / 't' / 'nope.onnx')!r} and "
        f"{str(tmp_path / 'nope.onnx')!r}); give a path relative to the test file or the rootdir, or an absolute path")


def _one_node_model(path, node, inputs, outputs, *, initializers=(), ir_version=8, **save):
    """A float32 model of one node, saved as written: no onnx.checker, since these models are meant to be wrong."""
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in inputs.items()],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, d) for n, d in outputs.items()],
                              list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = ir_version
    onnx.save(m, str(path), **save)
    return path


def test_external_data_missing(tmp_path):
    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    _one_node_model(tmp_path / "ext.onnx", helper.make_node("MatMul", ["x", "w"], ["y"]), {"x": [2, 64]},
                    {"y": [2, 64]}, initializers=[weight],
                    save_as_external_data=True, location="ext.bin", size_threshold=0)
    (tmp_path / "ext.bin").unlink()
    assert _error(lambda: load_model_info(tmp_path / "ext.onnx")) == (
        f"model {str(tmp_path / 'ext.onnx')!r} references external data 'ext.bin', which is missing at "
        f"{str(tmp_path / 'ext.bin')!r}; copy the data file next to the model")


def test_invalid_graph_names_the_problem(tmp_path):
    _one_node_model(tmp_path / "bad.onnx", helper.make_node("Relu", ["nope"], ["y"]), {"x": [2]}, {"y": [2]})
    text = _error(lambda: pytest_trt.run_onnxruntime(tmp_path / "bad.onnx", {"x": np.zeros(2, np.float32)}))
    assert text.startswith(f"onnxruntime cannot load model {str(tmp_path / 'bad.onnx')!r}: ")
    assert text == (f"onnxruntime cannot load model {str(tmp_path / 'bad.onnx')!r}: Invalid model. Node input 'nope' is "
                    "not a graph input, initializer, or output of a previous node.; "
                    "check it with onnx.checker.check_model(path, full_check=True)")


def test_unregistered_operator_is_named_without_onnxruntime_internals(tmp_path):
    _one_node_model(tmp_path / "nope.onnx", helper.make_node("Nope", ["x"], ["y"]), {"x": [2]}, {"y": [2]})
    text = _error(lambda: pytest_trt.run_onnxruntime(tmp_path / "nope.onnx", {"x": np.zeros(2, np.float32)}))
    assert "Error No Op registered for Nope with domain_version of 17" in text
    assert "[ONNXRuntimeError]" not in text and "Load model from" not in text


def test_ir_version_newer_than_onnxruntime_reads_says_how_to_save_it(tmp_path):
    import onnxruntime

    _one_node_model(tmp_path / "new.onnx", helper.make_node("Relu", ["x"], ["y"]), {"x": [2]}, {"y": [2]},
                    ir_version=99)
    text = _error(lambda: pytest_trt.run_onnxruntime(tmp_path / "new.onnx", {"x": np.zeros(2, np.float32)}))
    assert text.startswith(f"onnxruntime cannot load model {str(tmp_path / 'new.onnx')!r}: "
                           "Unsupported model IR version: 99, max supported IR version: "), onnxruntime.__version__
    assert text.endswith("; save it with an IR version this onnxruntime reads (set model.ir_version before onnx.save) "
                         "or upgrade onnxruntime")
    assert ".cc:" not in text and "onnxruntime::" not in text


def test_onnxruntime_run_failure_is_one_sentence_without_source_locations(tmp_path):
    _one_node_model(tmp_path / "add.onnx", helper.make_node("Add", ["a", "b"], ["y"]), {"a": ["n"], "b": ["m"]},
                    {"y": ["k"]})
    text = _error(lambda: pytest_trt.run_onnxruntime(
        tmp_path / "add.onnx", {"a": np.zeros(3, np.float32), "b": np.zeros(4, np.float32)}))
    assert text.startswith("onnxruntime failed to run add.onnx: Non-zero status code returned while running Add node.")
    assert "Attempting to broadcast an axis by a dimension other than 1. 3 by 4" in text
    assert "onnxruntime_src" not in text and "onnxruntime::" not in text and "\n" not in text


@pytest.mark.parametrize("shapes, sentence", [
    (None, "input 'x' dim 0 ('batch') is dynamic and no shape was given; pass shapes={'x': (<size>, 4)} (a marker or function argument)"),
    ({"x": (2, 4, 1)}, "shapes['x'] = (2, 4, 1) has 3 dims but input x (float32[batch,4]) has 2; give one size per dim"),
    ({"z": (2, 4)}, "shapes names 'z', which is not an input of m.onnx; its inputs are: x (float32[batch,4])"),
])
def test_generated_input_shapes(model, shapes, sentence):
    assert _error(lambda: make_inputs(model, shapes=shapes)) == sentence


def test_static_dim_contradicted(tmp_path):
    static = scale_model(tmp_path / "s.onnx", dims=(2, 4))
    assert _error(lambda: make_inputs(static, shapes={"x": (3, 4)})) == (
        "shapes['x'] gives dim 0 = 3 but the model fixes it at 2 (input x (float32[2,4])); use 2")


@pytest.mark.parametrize("inputs, sentence", [
    ({"q": np.zeros((2, 4), np.float32)},
     "inputs names 'q', which is not an input of s.onnx; its inputs are: x (float32[2,4])"),
    ({"x": np.zeros((2, 4), np.float64)},
     "input 'x' has dtype float64 but the model expects float32; convert it with .astype(np.float32)"),
    ({"x": np.zeros((3, 4), np.float32)},
     "input 'x' has shape (3, 4) but the model expects x (float32[2,4]); reshape it to match"),
    ({"x": np.zeros((2, 4, 1), np.float32)},
     "input 'x' has shape (2, 4, 1) but the model expects x (float32[2,4]); reshape it to match"),
    ({"x": "abc"}, "input 'x' has dtype str96 but the model expects float32; convert it with .astype(np.float32)"),
])
def test_user_inputs(tmp_path, inputs, sentence):
    info = load_model_info(scale_model(tmp_path / "s.onnx", dims=(2, 4)))
    assert _error(lambda: prepare_user_inputs(inputs, info)) == sentence


def test_user_inputs_missing_and_files(tmp_path):
    two = load_model_info(two_io_model(tmp_path / "t.onnx"))
    assert _error(lambda: prepare_user_inputs({}, two)) == (
        "inputs lack 'a', 'b'; the model needs a (float32[2,3]), b (int64[2,3])")
    info = load_model_info(scale_model(tmp_path / "s.onnx", dims=(2, 4)))
    missing, junk = tmp_path / "nope.npz", tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    assert _error(lambda: prepare_user_inputs(str(missing), info)) == (
        f"inputs file {str(missing)!r} does not exist; save one with np.savez")
    assert _error(lambda: prepare_user_inputs(str(junk), info)) == (
        f"inputs file {str(junk)!r} is not an .npz file (no zip header); save one with np.savez")


def test_outputs_that_vanish_or_change_against_the_golden():
    golden = {"logits": np.zeros((2, 3), np.float32), "label": np.zeros(2, np.int64)}
    report = compare({"logits": np.zeros((2, 3), np.float32)}, golden)
    assert report["label"].message() == "output 'label': missing from the actual outputs (expected int64[2])"
    report = compare({**golden, "extra": np.zeros(1)}, golden)
    assert report["extra"].message() == "output 'extra': present in the actual outputs but not in the expected ones"
    report = compare({**golden, "label": np.zeros(2, np.float32)}, golden)
    assert report["label"].message() == (
        "output 'label': dtype mismatch: actual float32 vs expected int64 (values not compared; floats compare "
        "with floats, integers with integers)")
    report = compare({**golden, "logits": np.zeros((3, 2), np.float32)}, golden)
    assert report["logits"].message() == (
        "output 'logits': shape mismatch: actual [3, 2] vs expected [2, 3] (values not compared)")


def test_nan_and_inf_outputs_are_their_own_class():
    expected = np.ones(4, np.float32)
    actual = np.array([np.nan, np.inf, 1.0, 1.0], np.float32)
    lines = compare(actual, expected)["output"].message().splitlines()
    assert lines[:3] == ["output 'output': values differ", "  mismatched elements: 2 / 4 (50%)",
                         "  of which NaN mismatches: 1 at (0,), Inf mismatches: 1 at (1,)"]


@pytest.mark.parametrize("code, cause", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EROFS, "Read-only file system"),
                                         (errno.EACCES, "Permission denied")])
def test_golden_write_refused_by_the_filesystem(tmp_path, monkeypatch, code, cause):
    import os

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("pytest_trt.core.files._create_temporary", refuse)
    assert _error(lambda: write_golden(tmp_path, "reference", {"y": np.zeros(2)}, {})) == (
        f"cannot write golden {str(tmp_path / 'reference.npz')!r} ({cause}); make the golden directory "
        "writable, free space, or choose another with --golden-dir")
    assert not list(tmp_path.iterdir())


def test_golden_dir_that_is_a_file(tmp_path):
    from pytest_trt.goldens.store import read_golden

    (tmp_path / "golden").write_text("x")
    assert _error(lambda: read_golden(tmp_path / "golden" / "t", "reference", "-")) == (
        f"golden {str(tmp_path / 'golden' / 't' / 'reference.json')!r} cannot be read (Not a directory); "
        "check that the golden directory (--golden-dir) is a readable directory")


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10**12) | st.floats() | st.text(max_size=8)
    | st.sampled_from(["fp16", "fp32", "allclose", "either", "x", "min", "opt", "max", "1G"]),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.sampled_from(["x", "fp16", "atol", "rtol", "min", "opt", "max", "logits"]) | st.text(max_size=5),
                      inner, max_size=3),
    max_leaves=12)


@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory):
    return scale_model(tmp_path_factory.mktemp("fuzz") / "m.onnx")


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from([a for a in ARGUMENTS if a != "model"]) | st.text(max_size=8), VALUES,
                       max_size=4))
def test_fuzzed_marker_arguments_never_crash(fuzz_model, kwargs):
    """Whatever a user writes in the marker: accepted, or one SpecError sentence; never a traceback."""
    try:
        parse_marker((), {"model": str(fuzz_model), **kwargs})
    except SpecError as exc:
        text = str(exc)
        assert text and "\n" not in text and "Traceback" not in text
