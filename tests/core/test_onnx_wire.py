"""The protobuf reader against onnx itself: same inputs, outputs, dtypes, dims and external files."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.core.onnx_wire import ELEM_TYPES, WireError, read_signature

from models import external_data_model, scale_model, two_io_model
from shared import ROOT

EXAMPLES = sorted((ROOT / "examples" / "models").glob("*.onnx"))


def onnx_view(proto: onnx.ModelProto):
    """What onnx says: (inputs without initializers, outputs) as (name, elem_type, dims)."""
    def info(v):
        t = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
                     for d in t.shape.dim)
        return v.name, t.elem_type, dims

    inits = {i.name for i in proto.graph.initializer}
    return ([info(v) for v in proto.graph.input if v.name not in inits], [info(v) for v in proto.graph.output])


def wire_view(data: bytes):
    sig = read_signature(data)
    return ([(v.name, v.elem_type, v.dims) for v in sig.inputs], [(v.name, v.elem_type, v.dims) for v in sig.outputs])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_models_agree_with_onnx(path):
    assert wire_view(path.read_bytes()) == onnx_view(onnx.load(str(path)))


def test_test_models_agree_with_onnx(tmp_path):
    for path in (two_io_model(tmp_path / "a.onnx"), scale_model(tmp_path / "b.onnx", dims=("n", None, 3))):
        assert wire_view(path.read_bytes()) == onnx_view(onnx.load(str(path)))


@pytest.mark.parametrize("elem", sorted(ELEM_TYPES) + [TensorProto.STRING])
def test_every_element_type_and_odd_dims(elem):
    dims = [0, -1, "seq", None, 7, 2**40]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", elem, dims)],
                              [helper.make_tensor_value_info("y", elem, dims)])
    proto = helper.make_model(graph)
    assert wire_view(proto.SerializeToString()) == onnx_view(proto)


def test_element_type_names_match_onnx():
    import ml_dtypes  # noqa: F401  (onnx maps the narrow float types to ml_dtypes)

    for elem, name in ELEM_TYPES.items():
        assert np.dtype(helper.tensor_dtype_to_np_dtype(elem)).name == name, elem


def test_external_data_in_initializers_and_subgraphs(tmp_path):
    path = external_data_model(tmp_path / "ext.onnx")
    assert read_signature(path.read_bytes()).external_data == {"ext.data"}
    # a Constant inside an If branch whose tensor lives in another file
    tensor = numpy_helper.from_array(np.ones(4, np.float32), "c")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    for key, value in (("location", "branch.bin"), ("offset", "0"), ("length", "16")):
        tensor.external_data.add(key=key, value=value)
    branch = helper.make_graph([helper.make_node("Constant", [], ["c"], value=tensor)], "then", [],
                               [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4])])
    graph = helper.make_graph([helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)], "g",
                              [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    sig = read_signature(helper.make_model(graph).SerializeToString())
    assert sig.external_data == {"branch.bin"} and [v.name for v in sig.inputs] == ["cond"]


def test_initializer_listed_as_input_is_not_an_input():
    w = numpy_helper.from_array(np.ones(3, np.float32), "w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], [w])
    assert [v.name for v in read_signature(helper.make_model(graph).SerializeToString()).inputs] == ["x"]


def test_non_tensor_io_has_no_elem_type():
    seq = helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("SequenceLength", ["s"], ["n"])], "g", [seq],
                              [helper.make_tensor_value_info("n", TensorProto.INT64, [])])
    sig = read_signature(helper.make_model(graph).SerializeToString())
    assert sig.inputs[0].elem_type is None and sig.outputs[0].elem_type == TensorProto.INT64


@pytest.mark.parametrize("cut", [1, 10, 50, -3])
def test_truncated_models_are_refused(cut):
    data = (EXAMPLES[0]).read_bytes()
    with pytest.raises(WireError):
        read_signature(data[:cut] if cut > 0 else data[:cut] + b"\xff")


def test_lfs_pointer_is_refused():
    with pytest.raises(WireError):
        read_signature(b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
