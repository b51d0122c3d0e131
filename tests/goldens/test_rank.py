"""Goldens hold arrays of any rank, empty dimensions included, through the whole path: the writer, the
reader, the sidecar, the comparison and onnxruntime's outputs."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.goldens.store import read_golden, write_golden

from shared import HINT, INI

SHAPES = [(), (0,), (3, 0, 2), (1,), (1, 1, 0), (2, 3)]


def odd_shapes_model(path):
    """x float32[3,4] -> total (rank 0: ReduceSum over all axes, keepdims=0), none float32[0,4] (an empty
    Slice), hollow float32[3,0,2] (ConstantOfShape with an empty dimension), first int64[] (a rank-0 Gather)."""
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in [("zero", [0]), ("shape", [3, 0, 2]), ("i", 0)]]
    nodes = [helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
             helper.make_node("Slice", ["x", "zero", "zero", "zero"], ["none"]),
             helper.make_node("ConstantOfShape", ["shape"], ["hollow"],
                              value=numpy_helper.from_array(np.array([1.0], np.float32))),
             helper.make_node("Shape", ["x"], ["dims"]),
             helper.make_node("Gather", ["dims", "i"], ["first"])]
    graph = helper.make_graph(nodes, "odd_shapes", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("total", TensorProto.FLOAT, []),
                               helper.make_tensor_value_info("none", TensorProto.FLOAT, [0, 4]),
                               helper.make_tensor_value_info("hollow", TensorProto.FLOAT, [3, 0, 2]),
                               helper.make_tensor_value_info("first", TensorProto.INT64, [])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "int64", "bool"])
def test_any_rank_round_trips(tmp_path, shape, dtype):
    array = (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)
    write_golden(tmp_path, "reference", {"y": array}, {})
    loaded = read_golden(tmp_path, "reference", HINT)
    assert loaded.arrays["y"].shape == shape and loaded.arrays["y"].dtype == array.dtype
    assert np.array_equal(loaded.arrays["y"], array) and loaded.meta["outputs"]["y"]["shape"] == list(shape)


def test_a_model_with_rank_0_and_empty_outputs_passes_its_goldens(pytester):
    odd_shapes_model(pytester.path / "models" / "odd.onnx")
    pytester.makeini(INI)
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/odd.onnx")
        def test_x(trt_compare):
            result = trt_compare()
            assert {k: v.shape for k, v in result.reference.items()} == {
                "total": (), "none": (0, 4), "hollow": (3, 0, 2), "first": ()}
    """)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*goldens in *golden: 1 unchanged*"])


def test_engine_inputs_keep_rank_0_and_empty_shapes():
    """The arrays handed to TensorRT (set_input_shape takes their shape) keep the shapes the model declares."""
    from pytest_trt.backends.tensorrt.plan import TensorIO, engine_inputs

    io = [TensorIO("s", True, "float32", ()), TensorIO("e", True, "int32", (3, 0)),
          TensorIO("f", True, "float32", (2, 3))]
    given = {"s": np.array(2.5, np.float32), "e": np.zeros((3, 0), np.int64), "f": np.ones((3, 2), np.float32).T}
    prepared = engine_inputs(io, given)
    assert {k: v.shape for k, v in prepared.items()} == {"s": (), "e": (3, 0), "f": (2, 3)}
    assert prepared["f"].flags.c_contiguous and prepared["s"] == 2.5 and prepared["e"].dtype == np.int32
