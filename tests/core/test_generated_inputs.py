"""Generated inputs that models accept: indices inside their table, shape inputs that give usable shapes.

Each model runs in onnxruntime on make_inputs' result: values drawn without looking at the nodes that use an
input would be out of bounds as indices, or invalid as shapes, in every one of these.
"""
import importlib.util

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_trt import make_inputs
from pytest_trt.errors import InputError
from pytest_trt.core.generated_inputs import generate

from shared import ROOT

F, I64, I32 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32


def build(path, nodes, inputs, outputs, inits=(), opset=17, value_info=()):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
                              value_info=[helper.make_tensor_value_info(*v) for v in value_info])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run(path, **kwargs):
    inputs = make_inputs(path, **kwargs)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, inputs)
    return inputs


def fitted(model, name, expected, seeds=range(10), **kwargs):
    """Over ``seeds``, onnxruntime accepts every result; input ``name`` keeps its default bits where they
    fit and is ``expected`` otherwise, which happens at least once."""
    fixed = 0
    for seed in seeds:
        values = run(model, seed=seed, **kwargs)[name]
        if not np.array_equal(values, generate(name, values.dtype.name, values.shape, seed)):
            assert values.tolist() == expected, seed
            fixed += 1
    assert fixed


def table(rows):
    return np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)


def test_embedding_indices_fall_inside_the_table(tmp_path):
    # tokens int32 -> Cast -> Gather on a 4-row table: the default [0, 10) would index rows 4..9.
    model = build(tmp_path / "m.onnx", [helper.make_node("Cast", ["tokens"], ["t"], to=I64),
                                        helper.make_node("Gather", ["table", "t"], ["y"])],
                  [("tokens", I32, [2, 16])], [("y", F, [2, 16, 3])], [("table", table(4))])
    tokens = run(model)["tokens"]
    assert tokens.max() == 3 and tokens.min() == 0
    assert np.array_equal(tokens, generate("tokens", "int32", (2, 16), 0, (0, 4)))  # same seed, same bits


def test_indices_that_already_fit_keep_their_bits(tmp_path):
    model = build(tmp_path / "m.onnx", [helper.make_node("Gather", ["table", "ids"], ["y"])],
                  [("ids", I64, [64])], [("y", F, [64, 3])], [("table", table(10))])
    assert np.array_equal(run(model)["ids"], generate("ids", "int64", (64,), 0))


@pytest.mark.parametrize("op, axis, data_dims", [("GatherElements", 1, (8, 6)), ("ScatterElements", 0, (6, 2))])
def test_elementwise_indices_along_the_axis(tmp_path, op, axis, data_dims):
    scatter = op == "ScatterElements"
    inits = [("data", np.zeros(data_dims, np.float32))] + ([("upd", np.ones((4, 2), np.float32))] if scatter else [])
    model = build(tmp_path / "m.onnx", [helper.make_node(op, ["data", "idx"] + ["upd"] * scatter, ["y"], axis=axis)],
                  [("idx", I64, [4, 2])], [("y", F, None)], inits)
    idx = run(model)["idx"]
    assert idx.max() == data_dims[axis] - 1


def test_gather_nd_indices_within_the_leading_dims(tmp_path):
    model = build(tmp_path / "m.onnx", [helper.make_node("GatherND", ["data", "idx"], ["y"])],
                  [("idx", I64, [5, 2])], [("y", F, None)], [("data", np.zeros((3, 7, 2), np.float32))])
    assert run(model)["idx"].max() < 3


def test_table_given_as_a_dynamic_input(tmp_path):
    model = build(tmp_path / "m.onnx", [helper.make_node("Gather", ["x", "ids"], ["y"], axis=1)],
                  [("x", F, [2, "n"]), ("ids", I64, [12])], [("y", F, None)])
    assert run(model, shapes={"x": (2, 3)})["ids"].max() < 3


def test_an_empty_table_has_no_valid_index(tmp_path):
    model = build(tmp_path / "m.onnx", [helper.make_node("Gather", ["table", "ids"], ["y"])],
                  [("ids", I64, [5])], [("y", F, [5, 3])], [("table", np.zeros((0, 3), np.float32))])
    with pytest.raises(InputError) as info:
        make_inputs(model)
    assert str(info.value) == ("input 'ids' indexes a dimension of size 0, so no index is valid; give 'ids' an "
                               "empty shape or pass the inputs with inputs=")


def test_explicit_input_range_is_kept(tmp_path):
    model = build(tmp_path / "m.onnx", [helper.make_node("Gather", ["table", "ids"], ["y"])],
                  [("ids", I64, [64])], [("y", F, [64, 3])], [("table", table(4))])
    assert make_inputs(model, input_range={"ids": (0, 100)})["ids"].max() > 4


def shape_model(path, op, x_dims, shape_len, out_dims=None, opset=17, **attrs):
    return build(path, [helper.make_node(op, ["x", "s"], ["y"], **attrs)],
                 [("x", F, x_dims), ("s", I64, [shape_len])], [("y", F, out_dims)], opset=opset)


@pytest.mark.parametrize("shape_len, out_dims, expected", [
    (2, [1, 3, 1], [1, 1]), (3, [3, 3, 3], [3, 3, 3]), (4, None, [1, 1, 1, 1])])
def test_expand_shape(tmp_path, shape_len, out_dims, expected):
    # the declared output decides when it broadcasts with x; else ones, which always do
    fitted(shape_model(tmp_path / "m.onnx", "Expand", [1, 3, 1], shape_len, out_dims), "s", expected)


@pytest.mark.parametrize("shape_len, out_dims, expected", [
    (2, [6, 4], [6, 4]), (2, None, [2, 12]), (1, None, [24]), (4, None, [2, 3, 4, 1])])
def test_reshape_target(tmp_path, shape_len, out_dims, expected):
    fitted(shape_model(tmp_path / "m.onnx", "Reshape", [2, 3, 4], shape_len, out_dims), "s", expected)


def test_split_sizes_add_up(tmp_path):
    model = build(tmp_path / "m.onnx", [helper.make_node("Split", ["x", "s"], ["a", "b", "c"], axis=1)],
                  [("x", F, [2, "n"]), ("s", I64, [3])], [("a", F, None), ("b", F, None), ("c", F, None)])
    fitted(model, "s", [3, 3, 4], shapes={"x": (2, 10)})


@pytest.mark.parametrize("op, opset, x_dims, n, expected", [
    ("Unsqueeze", 17, [2, 3], 2, [0, 1]), ("Squeeze", 17, [2, 1, 3, 1], 2, [1, 3]),
    ("ReduceSum", 17, [2, 3], 1, [0]), ("ReduceMax", 18, [2, 3, 4, 5], 3, [0, 1, 2])])
def test_axes(tmp_path, op, opset, x_dims, n, expected):
    fitted(shape_model(tmp_path / "m.onnx", op, x_dims, n, opset=opset), "s", expected)


def test_slice_axes_and_steps(tmp_path):
    ins = [("x", F, [4, 5]), ("starts", I64, [2]), ("ends", I64, [2]), ("axes", I64, [2]), ("steps", I64, [2])]
    model = build(tmp_path / "m.onnx", [helper.make_node("Slice", [n for n, *_ in ins], ["y"])], ins, [("y", F, None)])
    for seed in range(8):
        inputs = run(model, seed=seed)
        assert sorted(inputs["axes"].tolist()) in ([0, 1], [1, 0]) and 0 not in inputs["steps"]


def test_topk_k_onehot_depth_range_delta(tmp_path):
    topk = build(tmp_path / "a.onnx", [helper.make_node("TopK", ["x", "k"], ["v", "i"])],
                 [("x", F, [3, 4]), ("k", I64, [1])], [("v", F, None), ("i", I64, None)])
    fitted(topk, "k", [1])
    onehot = build(tmp_path / "b.onnx", [helper.make_node("OneHot", ["ids", "depth", "vals"], ["y"])],
                   [("ids", I64, [6]), ("depth", I64, [1])], [("y", F, [6, 7])], [("vals", np.array([0, 1], np.float32))])
    fitted(onehot, "depth", [7], seeds=range(20))
    ranged = build(tmp_path / "c.onnx", [helper.make_node("Range", ["a", "b", "d"], ["y"])],
                   [("a", I64, []), ("b", I64, []), ("d", I64, [])], [("y", I64, None)])
    fitted(ranged, "d", 1, seeds=range(20))


def test_resize_scales_and_sizes(tmp_path):
    roi = ("roi", np.zeros(0, np.float32))
    scales = build(tmp_path / "a.onnx", [helper.make_node("Resize", ["x", "roi", "s"], ["y"])],
                   [("x", F, [1, 1, 4, 4]), ("s", F, [4])], [("y", F, [1, 1, 8, 8])], [roi])
    fitted(scales, "s", [1, 1, 2, 2])
    sizes = build(tmp_path / "b.onnx", [helper.make_node("Resize", ["x", "roi", "", "s"], ["y"])],
                  [("x", F, [1, 1, 4, 4]), ("s", I64, [4])], [("y", F, None)], [roi])
    fitted(sizes, "s", [1, 1, 4, 4])


def test_a_sentence_when_the_model_does_not_say(tmp_path):
    # the split data is an intermediate value whose shape the file does not state
    model = build(tmp_path / "m.onnx", [helper.make_node("Relu", ["x"], ["r"]),
                                        helper.make_node("Split", ["r", "s"], ["a", "b"], name="split1")],
                  [("x", F, ["n"]), ("s", I64, [2])], [("a", F, None), ("b", F, None)])
    with pytest.raises(InputError) as info:
        make_inputs(model, shapes={"x": (10,)})
    assert str(info.value) == ("input 's' gives the split sizes of Split node 'split1', and the model's declared "
                               "shapes do not determine valid values; pass the inputs yourself with "
                               "inputs={name: array}")


def _benchmark():
    path = ROOT / "benchmarks" / "onnx_test_models.py"
    spec = importlib.util.spec_from_file_location("onnx_test_models", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_onnx_shipped_test_models():
    """benchmarks/onnx_test_models.py's measurement, on every model its selection rule keeps."""
    bench = _benchmark()
    folders = bench.select()
    if len(folders) < 50:
        pytest.skip(f"this onnx package ships {len(folders)} runnable test models")
    results = bench.measure(folders)
    accepted = [r for r in results if r[1] == "accepted"]
    assert [r for r in results if r[1] == "rejected"] == []     # the rest get a sentence, never an onnxruntime error
    assert len(accepted) / len(results) >= 0.95, results


def test_node_reader_agrees_with_onnx(tmp_path):
    from pytest_trt.core.onnx_wire import read_nodes

    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.zeros((2, 5), np.int64)))
    slice_ = helper.make_node("Slice", ["x", "c", "c"], ["y"], name="s")
    trans = helper.make_node("Transpose", ["y"], ["z"], perm=[1, 0])
    attrs = helper.make_node("Gather", ["t", "ids"], ["g"], axis=-1)
    model = build(tmp_path / "m.onnx", [const, slice_, trans, attrs],
                  [("x", F, ["n", 4]), ("ids", I64, [3])], [("z", F, [4, "n"]), ("g", F, None)],
                  [("t", table(4))], value_info=[("y", F, ["n", 4])])
    proto = onnx.load(str(model))
    graph = read_nodes(model.read_bytes())
    assert [(n.op_type, n.name, n.inputs, n.outputs) for n in graph.nodes] == [
        (n.op_type, n.name, tuple(n.input), tuple(n.output)) for n in proto.graph.node]
    assert graph.nodes[0].attrs == {"_dims": (2, 5)}
    assert graph.nodes[2].attrs == {"perm": (1, 0)} and graph.nodes[3].attrs == {"axis": -1}
    assert graph.dims == {"t": (4, 3), "y": ("n", 4), "z": (4, "n")}   # g states no shape: absent, not ()


def test_node_reader_takes_packed_repeated_ints():
    """proto3 writers pack repeated ints (onnx's own proto2 writer does not); both read the same."""
    from pytest_trt.core.onnx_wire import read_nodes

    def varint(v):
        v &= (1 << 64) - 1
        out = b""
        while True:
            out += bytes([(v & 0x7F) | (0x80 if v > 0x7F else 0)])
            v >>= 7
            if not v:
                return out

    def field(num, payload):
        return varint(num << 3 | 2) + varint(len(payload)) + payload

    packed = lambda values: b"".join(varint(v) for v in values)
    attr = field(1, b"perm") + field(8, packed([1, -1]))
    node = field(1, b"x") + field(2, b"y") + field(4, b"Transpose") + field(5, attr)
    init = field(1, packed([4, 3])) + field(8, b"t")
    graph = read_nodes(field(7, field(1, node) + field(5, init)))
    assert graph.nodes[0].attrs == {"perm": (1, -1)} and graph.dims == {"t": (4, 3)}
