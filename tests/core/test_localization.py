"""core.localization: the pure decisions of a localization (observable tensors, pass sizes, first divergence,
tally over samples, the error-growth path and its shortening), on node lists read from real ONNX models."""
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pytest_trt.core.localization import (PATH_ROWS, Localization, Tensor, TensorError, first_divergence, plan_passes,
                                          observable, path_to, pick_first, shorten, tally)
from pytest_trt.core.onnx_wire import read_nodes


def _nodes(nodes, inputs=("x",), outputs=("y",), inits=()):
    """The main graph's nodes as localize reads them (onnx_wire.read_nodes) from a real serialized model."""
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(i, TensorProto.FLOAT, [2]) for i in inputs],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, [2]) for o in outputs],
                              [numpy_helper.from_array(np.ones(2, np.float32), i) for i in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return read_nodes(model.SerializeToString()).nodes


def _error(name, node, order, share, status="compared", op="Add"):
    return TensorError(Tensor(name, node, op, order), status, max_abs=share, share=share, passed=share <= 1.0,
                       atol=1e-3, rtol=1e-3)


def test_observable_skips_constants_and_excluded_inputs_and_keeps_graph_order():
    nodes = _nodes([
        helper.make_node("Constant", [], ["c"], name="const", value=numpy_helper.from_array(np.ones(2, np.float32))),
        helper.make_node("Add", ["x", "c"], ["a"], name="first_add"),
        helper.make_node("Relu", ["a"], ["r"]),                         # unnamed: labelled by op and index
        helper.make_node("Identity", ["r"], ["x2"], name="passthrough"),
        helper.make_node("Mul", ["x2", "w"], ["y"], name="last")], inits=("w",))
    tensors = observable(nodes, exclude=["x2"])
    assert [(t.name, t.node, t.op, t.order) for t in tensors] == [
        ("a", "first_add", "Add", 1), ("r", "Relu#2", "Relu", 2), ("y", "last", "Mul", 4)]
    assert "c" not in [t.name for t in observable(nodes)]             # Constant outputs are never observed
    assert [t.name for t in observable(nodes)] == ["a", "r", "x2", "y"]


def test_observable_skips_empty_optional_outputs_and_names_each_tensor_once():
    nodes = _nodes([helper.make_node("Dropout", ["x"], ["d", ""], name="drop"),
                    helper.make_node("Relu", ["d"], ["y"], name="act")])
    assert [(t.name, t.node) for t in observable(nodes)] == [("d", "drop"), ("y", "act")]


def test_passes_fit_the_budget_by_each_tensors_size():
    names = [f"t{i}" for i in range(6)]
    sizes = dict(zip(names, [10, 10, 10, 40, 5, 5]))
    assert plan_passes([], sizes, 100) == []
    assert plan_passes(names, sizes, 1 << 20) == [names]                       # all fit: one pass
    assert plan_passes(names, sizes, 30) == [["t0", "t1", "t2"], ["t3"], ["t4", "t5"]]
    assert plan_passes(names, sizes, 25) == [["t0", "t1"], ["t2"], ["t3"], ["t4", "t5"]]  # t3 alone: larger than it
    # an unknown size counts as the largest known one
    assert plan_passes(["a", "b", "c"], {"a": 10, "b": None, "c": 50}, 59) == [["a"], ["b"], ["c"]]
    assert plan_passes(["a", "b"], {}, 32) == [["a", "b"]]                     # nothing known: budget / 16 each

def test_first_divergence_is_the_earliest_diverged_tensor_in_graph_order():
    errors = [_error("c", "n2", 2, 5.0), _error("a", "n0", 0, 0.5), _error("b", "n1", 1, 3.0),
              _error("z", "n9", 9, 100.0)]
    assert first_divergence(errors).name == "b"
    assert first_divergence(reversed(errors)).name == "b"         # by order, not by position in the iterable
    fused = TensorError(Tensor("f", "n0", "Add", 0), "fused", passed=False)  # not compared: not a divergence
    assert first_divergence([fused, _error("c", "n2", 2, 5.0)]).name == "c"
    assert first_divergence([_error("a", "n0", 0, 1.0)]) is None  # exactly its budget passes
    assert first_divergence([]) is None


def test_tally_and_pick_first_prefer_the_most_samples_then_the_earliest_node():
    late, early, other = _error("t7", "late", 7, 2.0), _error("t3", "early", 3, 2.0), _error("t5", "mid", 5, 9.0)
    assert tally([late, None, early, late, other]) == [("late", "Add", 2), ("early", "Add", 1), ("mid", "Add", 1)]
    assert pick_first([late, None, early, late]) is late
    tie = [late, early]                                           # one sample each: the earlier node wins
    assert tally(tie) == [("early", "Add", 1), ("late", "Add", 1)]
    assert pick_first(tie) is early
    second_sample = _error("t3", "early", 3, 7.0)                 # as the first sample naming it saw it
    assert pick_first([None, early, second_sample, late]) is early
    assert pick_first([None, None]) is None and tally([None]) == []


def test_localization_found_and_its_tally():
    loc = Localization("fp16", "onnxruntime 1.0", "onnxruntime", "graph outputs", False)
    assert not loc.found and loc.tally() == []
    loc.firsts = [_error("t1", "n1", 1, 2.0), None, _error("t1", "n1", 1, 3.0)]
    loc.first = pick_first(loc.firsts)
    assert loc.found and loc.tally() == [("n1", "Add", 2)]


DIAMOND = [helper.make_node("Relu", ["x"], ["s"], name="start"),
           helper.make_node("Neg", ["s"], ["left"], name="to_left"),
           helper.make_node("Abs", ["s"], ["right"], name="to_right"),
           helper.make_node("Add", ["left", "right"], ["join"], name="join"),
           helper.make_node("Sigmoid", ["x"], ["side"], name="side"),     # does not depend on start
           helper.make_node("Mul", ["join", "side"], ["y"], name="end")]


def _diamond_errors(left, right):
    nodes = _nodes(DIAMOND, outputs=("y", "side"))
    shares = {"s": 2.0, "left": left, "right": right, "join": 4.0, "side": 0.1, "y": 6.0}
    tensors = observable(nodes, exclude=["x"])
    return nodes, {t.name: TensorError(t, "compared", share=shares[t.name], passed=shares[t.name] <= 1)
                   for t in tensors}


def test_path_to_follows_the_branch_with_the_larger_share_on_a_diamond():
    nodes, errors = _diamond_errors(left=3.0, right=1.5)
    assert [e.name for e in path_to("s", "y", nodes, errors)] == ["s", "left", "join", "y"]
    nodes, errors = _diamond_errors(left=1.5, right=3.0)
    path = path_to("s", "y", nodes, errors)
    assert [e.name for e in path] == ["s", "right", "join", "y"]
    assert [e.node for e in path] == ["start", "to_right", "join", "end"]   # and not the side input 'side'


def test_path_to_is_empty_when_the_output_does_not_depend_on_the_start():
    nodes, errors = _diamond_errors(left=3.0, right=1.5)
    assert path_to("s", "side", nodes, errors) == []
    assert path_to("left", "right", nodes, errors) == []           # siblings: neither descends from the other
    assert [e.name for e in path_to("s", "s", nodes, errors)] == ["s"]


def test_path_to_steps_over_tensors_without_an_error_record():
    nodes, errors = _diamond_errors(left=3.0, right=1.5)
    del errors["join"]                                              # e.g. not exposed by the engine
    assert [e.name for e in path_to("s", "y", nodes, errors)] == ["s", "left", "y"]


def test_shorten_keeps_short_paths_and_elides_the_middle_of_long_ones():
    path = [_error(f"t{i}", f"n{i}", i, 2.0) for i in range(30)]
    assert shorten(path[:PATH_ROWS]) == path[:PATH_ROWS]
    short = shorten(path)
    assert len(short) == PATH_ROWS and short.count(None) == 1
    head = PATH_ROWS // 2
    assert short[:head] == path[:head] and short[head] is None
    assert short[head + 1:] == path[-(PATH_ROWS - head - 1):]
    assert short[-1] is path[-1] and short[0] is path[0]
    assert [e.name if e else None for e in shorten(path[:5], rows=4)] == ["t0", "t1", None, "t4"]


def test_diverged_needs_a_comparison_that_failed():
    assert _error("a", "n", 0, math.inf).diverged
    assert not _error("a", "n", 0, 0.9).diverged
    assert not TensorError(Tensor("a", "n", "Add", 0), "absent", passed=False).diverged


def test_landmarks_first_nonfinite_and_largest_jump():
    from pytest_trt.core.localization import first_nonfinite, largest_jump

    # x -> a (Mul, carries a 45% input error to 300%) -> b (MatMul, 300% -> Inf) -> y
    nodes = _nodes([helper.make_node("Mul", ["x", "w"], ["a"], name="scale"),
                    helper.make_node("MatMul", ["a", "w2"], ["b"], name="scores"),
                    helper.make_node("Relu", ["b"], ["y"], name="act")], inits=("w", "w2"))
    errors = {"a": _error("a", "scale", 0, 3.0, op="Mul"), "b": _error("b", "scores", 1, 900.0, op="MatMul"),
              "y": _error("y", "act", 2, 900.0, op="Relu")}
    errors["b"].nonfinite = 12
    assert first_nonfinite(errors.values()).name == "b"
    jump, factor = largest_jump(errors, nodes)
    assert jump.name == "a" and factor == 300.0      # weights count as 0: the floor of 1% makes 3.0 -> 300x
    errors["a"].share = 0.45                          # a passes now: b multiplies 0.45 into 900
    errors["a"].passed = True
    jump, factor = largest_jump(errors, nodes)
    assert jump.name == "b" and factor == 2000.0
    assert first_nonfinite([e for e in errors.values() if e.name != "b"]) is None


def test_shorten_keeps_landmarks_inside_the_elided_middle():
    path = [_error(f"t{i}", f"n{i}", i, 1.0 + i) for i in range(30)]
    short = shorten(path, rows=8, keep=["t15"])
    names = [e.name if e is not None else None for e in short]
    assert names == ["t0", "t1", "t2", "t3", None, "t15", None, "t27", "t28", "t29"]
    assert [e.name if e else None for e in shorten(path, rows=8)] == ["t0", "t1", "t2", "t3", None, "t27", "t28",
                                                                       "t29"]
