"""What a failing check reports: the element that failed, by name, in the terminal and in report.json.

A real pytest run (pytester) of a real ONNX model on onnxruntime: y = x + c, its golden recorded with
c = 0, then c changed as by a small retrain, so that one element fails at 103.5% of its bound while
the greatest absolute and the greatest relative differences lie elsewhere, within their bounds.
"""
import json
import textwrap

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SHAPE = (3, 8, 150)
TEST = textwrap.dedent("""
    import numpy as np
    import pytest

    @pytest.mark.trt_compare(model="models/add.onnx", atol=1e-5, rtol=1e-3)
    def test_add(trt_compare):
        x = np.full((3, 8, 150), 0.5, np.float32)
        x[0, 0, 0], x[1, 2, 3] = 100.0, 1e-6
        trt_compare(inputs={"x": x})
""")


def _add_model(path, c: np.ndarray) -> None:
    graph = helper.make_graph([helper.make_node("Add", ["x", "c"], ["y"])], "add",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(SHAPE))],
                              [numpy_helper.from_array(c, "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _retrained() -> np.ndarray:
    bound = lambda x: 1e-5 + 1e-3 * x
    c = np.zeros(SHAPE, np.float32)
    c[0, 0, 0] = 0.9 * bound(100.0)        # the greatest absolute difference: 90% of a wide bound
    c[1, 2, 3] = 0.9 * bound(1e-6)         # the greatest relative difference: 90% of a bound that is mostly atol
    c[2, 7, 61] = 1.035 * bound(0.5)       # the failure
    return c


def test_report_and_report_json_name_the_failing_element(pytester):
    model = pytester.path / "models" / "add.onnx"
    _add_model(model, np.zeros(SHAPE, np.float32))
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider\n")
    pytester.makepyfile(test_a=TEST)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    _add_model(model, _retrained())
    result = pytester.runpytest("--trt-artifacts", "art")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mismatched elements: 1 / 3600 (0.0278%)",
                                 "*largest share of its bound: 103.5% at index (2, 7, 61) (actual 0.500528, "
                                 "expected 0.5, |a-b| 0.000527859, allowed 0.00051)",
                                 "*greatest absolute difference: * at index (0, 0, 0) *; allowed 0.10001, 90% of it)",
                                 "*greatest relative difference: * at index (1, 2, 3) *, 90% of it)",
                                 "*failing indices: (2, 7, 61)"])
    report = json.loads((pytester.path / "art" / "test_a" / "test_add" / "fp32" / "report.json").read_text())
    y = report["comparisons"]["reference-vs-golden"]["outputs"][0]
    assert y["mismatches"] == 1 and y["failing_indices"] == [[2, 7, 61]]
    assert y["worst"]["index"] == [2, 7, 61] and abs(y["worst"]["share"] - 1.035) < 1e-4
    assert y["worst"]["expected"] == 0.5 and abs(y["worst"]["allowed"] - 5.1e-4) < 1e-9
    assert y["max_abs"]["index"] == [0, 0, 0] and y["max_abs"]["share"] < 1
    assert y["max_rel"]["index"] == [1, 2, 3] and y["max_rel"]["share"] < 1
    assert dict(y["histogram"]) == {"0": 3597, "1e-6": 1, "1e-4": 1, "1e-2": 1}
