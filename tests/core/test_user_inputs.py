"""Inputs a user gives or sizes: shared dims that agree, Python lists, sizes that fit in memory, and
sentences that fit both the marker and the eager API."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import pytest_trt
from pytest_trt import make_inputs
from pytest_trt.errors import InputError
from pytest_trt.core import generated_inputs
from pytest_trt.core.generated_inputs import generate
from pytest_trt.core.inputs import prepare_user_inputs
from pytest_trt.core.model import load_model_info

from models import identity_model, scale_model

from shared import INI


def shared_batch_model(path):
    """y = a + b, both float32['batch', 4]."""
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 4]) for n in ("a", "b")]
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "add", info,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def error(call) -> str:
    with pytest.raises(InputError) as info:
        call()
    return str(info.value)


def test_inputs_that_share_a_dim_must_agree(tmp_path):
    model = shared_batch_model(tmp_path / "add.onnx")
    given = {"a": np.zeros((2, 4), np.float32), "b": np.zeros((3, 4), np.float32)}
    assert error(lambda: pytest_trt.run_onnxruntime(model, given)) == (
        "inputs= gives inputs 'a' and 'b' different sizes for the dim 'batch' they share: 2 (a dim 0) and "
        "3 (b dim 0); give both the same size")
    assert error(lambda: make_inputs(model, shapes={"a": (2, 4), "b": (3, 4)})) == (
        "shapes= gives inputs 'a' and 'b' different sizes for the dim 'batch' they share: 2 (a dim 0) and "
        "3 (b dim 0); give both the same size")
    assert pytest_trt.run_onnxruntime(model, {**given, "b": np.ones((2, 4), np.float32)})["y"].sum() == 8
    assert make_inputs(model, shapes={"a": (3, 4), "b": (3, 4)})["b"].shape == (3, 4)


def test_one_input_whose_dims_share_a_name(tmp_path):
    square = identity_model(tmp_path / "sq.onnx", "float32", dims=("n", "n"))
    assert error(lambda: make_inputs(square, shapes={"x": (2, 3)})) == (
        "shapes= gives input 'x' different sizes for the dim 'n' they share: 2 (x dim 0) and 3 (x dim 1); "
        "give both the same size")
    assert make_inputs(square, shapes={"x": (3, 3)})["x"].shape == (3, 3)


def test_shared_dim_mismatch_in_a_test_run(pytester):
    shared_batch_model(pytester.path / "add.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import numpy as np, pytest
        @pytest.mark.trt_compare(model="add.onnx")
        def test_given(trt_compare):
            trt_compare(inputs={"a": np.zeros((2, 4), np.float32), "b": np.zeros((3, 4), np.float32)})
        @pytest.mark.trt_compare(model="add.onnx", shapes={"a": (2, 4), "b": (3, 4)})
        def test_generated(trt_compare):
            trt_compare()
    """)
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    assert "broadcast" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines([
        "*test_a.py::test_given: inputs= gives inputs 'a' and 'b' different sizes for the dim 'batch' they share: "
        "2 (a dim 0) and 3 (b dim 0); give both the same size",
        "*test_a.py::test_generated: shapes= gives inputs 'a' and 'b' different sizes*"])


@pytest.mark.parametrize("dtype, value, expected", [
    ("float32", [[1, 2.5], [3, 4]], np.array([[1, 2.5], [3, 4]], np.float32)),
    ("float32", [1, 2, 3], np.array([1, 2, 3], np.float32)),        # ints are exact in float32
    ("float16", [0.1, 1e4, -2], np.array([0.1, 1e4, -2], np.float16)),  # floats round to nearest
    ("int32", [[1, -2, 3]], np.array([[1, -2, 3]], np.int32)),
    ("uint8", (0, 255, 7), np.array([0, 255, 7], np.uint8)),
    ("bool", [True, False, 1], np.array([True, False, True])),
    ("int64", [], np.zeros(0, np.int64)),
])
def test_python_lists_take_the_declared_dtype(tmp_path, dtype, value, expected):
    dims = np.shape(expected) if np.size(expected) else (0,)
    info = load_model_info(identity_model(tmp_path / "m.onnx", dtype, dims=dims))
    array = prepare_user_inputs({"x": value}, info)["x"]
    assert array.dtype == expected.dtype and np.array_equal(array, expected)


@pytest.mark.parametrize("dtype, value, sentence", [
    ("int64", [1.5, 2, 3],
     "input 'x' is a list of floats but the model expects int64; give ints, or pass an array of dtype int64"),
    ("int64", [1.0, 2.0, 3.0],
     "input 'x' is a list of floats but the model expects int64; give ints, or pass an array of dtype int64"),
    ("uint8", [1, 300, 2],
     "input 'x' has values that do not fit uint8 (e.g. 300); give values uint8 can hold, or pass an array of dtype uint8"),
    ("float16", [1.0, 70000.0, 2.0],
     "input 'x' has values beyond the range of float16 (e.g. 70000.0); give values float16 can hold, or pass an "
     "array of dtype float16"),
    ("float32", [16777217, 0, 1],
     "input 'x' has values that are not exact in float32 (e.g. 16777217); give values float32 can hold, or pass "
     "an array of dtype float32"),
    ("bool", [0, 1, 2],
     "input 'x' has values that do not fit bool (e.g. 2); give values bool can hold, or pass an array of dtype bool"),
    ("float32", ["a", "b", "c"],
     "input 'x' is a list of strings, which do not convert to float32; give numbers, or pass an array of dtype float32"),
    ("float32", [None, 1, 2],
     "input 'x' is a list of Python objects (None, mixed types, or ints beyond 64 bits), which do not convert to "
     "float32; give numbers, or pass an array of dtype float32"),
    ("float32", [[1], [2, 3], [4]],
     "input 'x' is a nested list whose rows differ in length; give equal rows, or pass an array of dtype float32"),
])
def test_python_lists_that_do_not_fit(tmp_path, dtype, value, sentence):
    info = load_model_info(identity_model(tmp_path / "m.onnx", dtype, dims=(3,)))
    assert error(lambda: prepare_user_inputs({"x": value}, info)) == sentence


def test_arrays_keep_their_dtype(tmp_path):
    info = load_model_info(identity_model(tmp_path / "m.onnx", "float32", dims=(3,)))
    assert error(lambda: prepare_user_inputs({"x": np.array([1.0, 2.0, 3.0])}, info)) == (
        "input 'x' has dtype float64 but the model expects float32; convert it with .astype(np.float32)")
    scalar = load_model_info(identity_model(tmp_path / "s.onnx", "float32", dims=()))
    assert error(lambda: prepare_user_inputs({"x": np.float64(1.0)}, scalar)).startswith("input 'x' has dtype float64")
    assert prepare_user_inputs({"x": 1.5}, scalar)["x"].dtype == np.float32


def test_a_list_in_a_test_run(pytester):
    identity_model(pytester.path / "ids.onnx", "int32", dims=(2, 3))
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="ids.onnx")
        def test_list(trt_compare):
            result = trt_compare(inputs=[[1, 2, 3], [4, 5, 6]])
            assert result.reference["y"].tolist() == [[1, 2, 3], [4, 5, 6]]
    """)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)


@pytest.mark.parametrize("dims, shapes, sentence", [
    (("batch", 4), {"x": (2**36, 4)},
     "input 'x' of shape (68719476736, 4) (float32) would take 1,024 GiB, more than the 2 GiB pytest-trt generates "
     "per input; give smaller sizes in shapes=, or pass your own arrays with inputs="),
    ((2**31, 3), None,
     "input 'x' of shape (2147483648, 3) (float32) would take 24 GiB, more than the 2 GiB pytest-trt generates "
     "per input; give smaller sizes in shapes=, or pass your own arrays with inputs="),
])
def test_huge_shapes_are_refused_before_allocating(tmp_path, dims, shapes, sentence):
    model = scale_model(tmp_path / "m.onnx", dims=dims)
    assert error(lambda: make_inputs(model, shapes=shapes)) == sentence


def test_huge_shape_in_a_test_run(pytester):
    scale_model(pytester.path / "m.onnx", dims=("batch", 4))
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="m.onnx", shapes={"x": (2**36, 4)})
        def test_huge(trt_compare):
            trt_compare()
        @pytest.mark.trt_compare(model="m.onnx", shapes={"x": (2, 4)})
        def test_small(trt_compare):
            trt_compare()
    """)
    result = pytester.runpytest("--update-golden")
    result.assert_outcomes(passed=1, failed=1)
    assert "MemoryError" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*test_a.py::test_huge: input 'x' of shape (68719476736, 4) (float32) would take "
                                 "1,024 GiB, more than the 2 GiB*"])


@pytest.mark.parametrize("dtype", ["float32", "float16", "int64", "bool"])
def test_large_inputs_are_generated_in_chunks_with_the_same_bits(monkeypatch, dtype):
    whole = generate("x", dtype, (5, 23), 3)
    monkeypatch.setattr(generated_inputs, "_CHUNK", 7)   # 115 elements: 16 full chunks and a partial one
    assert np.array_equal(generate("x", dtype, (5, 23), 3), whole)


def test_dynamic_dim_sentence_fits_the_eager_api(tmp_path):
    """make_inputs and build_engine are called outside any marker: the fix names shapes= wherever it is given."""
    model = scale_model(tmp_path / "m.onnx", dims=("batch", 4))
    sentence = error(lambda: make_inputs(model))
    assert sentence == ("input 'x' dim 0 ('batch') is dynamic and no shape was given; "
                        "pass shapes={'x': (<size>, 4)} (a marker or function argument)")
    assert "to the marker" not in sentence
