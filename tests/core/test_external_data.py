"""Weights in an external data file that change while one process runs: a fixture writing new weights, or a
re-export that keeps the graph. Model info, the onnxruntime session and the engine cache key must all see them."""
import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import pytest_trt
from pytest_trt.backends.tensorrt.cache import cache_key, key_fields
from pytest_trt.core.model import load_model_info

from shared import INI


def weights_model(path, w: float):
    """y = x + w, w (16 floats, all equal to ``w``) in ``<stem>.data`` next to the model."""
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "ext",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16])],
                              [numpy_helper.from_array(np.full(16, w, np.float32), "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=path.stem + ".data", size_threshold=0)
    return path


def write_weights(data_path, w: float):
    """What a fixture does: new weights into the data file only, in place (same size, same inode)."""
    with open(data_path, "r+b") as f:
        f.write(np.full(16, w, np.float32).tobytes())


def test_new_external_weights_are_seen_within_one_process(tmp_path):
    model = weights_model(tmp_path / "m.onnx", 1.0)
    x = {"x": np.zeros(16, np.float32)}
    before = load_model_info(model)
    assert pytest_trt.run_onnxruntime(model, x)["y"][0] == 1.0
    graph_bytes = model.read_bytes()
    write_weights(tmp_path / "m.data", 5.0)
    assert model.read_bytes() == graph_bytes  # the .onnx file is untouched
    after = load_model_info(model)
    assert after.sha256 != before.sha256
    assert pytest_trt.run_onnxruntime(model, x)["y"][0] == 5.0   # a new onnxruntime session, new weights
    assert load_model_info(model) is after                       # unchanged since: cached


def test_engine_cache_key_follows_external_weights(tmp_path):
    model = weights_model(tmp_path / "m.onnx", 1.0)

    def key():
        return cache_key(key_fields(model_sha256=load_model_info(model).sha256, flavor="tensorrt", version="10.9",
                                    device={"name": "GPU", "compute_capability": "8.9", "runtime": "12.8"},
                                    realization={"precision": "fp32"}, profile=None, build_options={}))

    first = key()
    write_weights(tmp_path / "m.data", 2.0)
    assert key() != first


def test_tensorrt_rtx_rebuilds_when_only_external_weights_change(tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed")
    from pytest_trt.backends.registry import get_backend

    model, cache = weights_model(tmp_path / "m.onnx", 1.0), tmp_path / "cache"
    events = get_backend("tensorrt_rtx").events
    start = len(events)
    pytest_trt.build_engine(model, backend="tensorrt_rtx", cache_dir=cache)
    write_weights(tmp_path / "m.data", 2.0)
    pytest_trt.build_engine(model, backend="tensorrt_rtx", cache_dir=cache)
    pytest_trt.build_engine(model, backend="tensorrt_rtx", cache_dir=cache)
    assert [e["status"] for e in events[start:]] == ["built", "built", "loaded"]
    assert len(list((cache / "plans").glob("*.plan"))) == 2


def test_fixture_rewriting_external_weights_between_tests(pytester):
    """Two tests in one pytest process, each with a fixture that writes its own weights into the data file:
    each records (and later checks) the outputs of its own weights, and the goldens name different models."""
    weights_model(pytester.path / "models" / "m.onnx", 0.0)
    pytester.makeini(INI)
    pytester.makepyfile(test_w="""
        import numpy as np, pytest

        @pytest.fixture
        def weights(request):
            with open("models/m.data", "r+b") as f:
                f.write(np.full(16, request.param, np.float32).tobytes())
            return request.param

        @pytest.mark.trt_compare(model="models/m.onnx")
        @pytest.mark.parametrize("weights", [1.0, 2.0], indirect=True)
        def test_weights(trt_compare, weights):
            result = trt_compare()
            assert np.allclose(result.reference["y"] - result.inputs["x"], weights, atol=1e-6)
    """)
    pytester.runpytest("--update-golden", "--trt-backend=none").assert_outcomes(passed=2)
    sidecars = sorted(pytester.path.glob("golden/**/reference.json"))
    shas = {json.loads(p.read_text())["model"]["sha256"] for p in sidecars}
    assert len(sidecars) == 2 and len(shas) == 2
    pytester.runpytest("--trt-backend=none").assert_outcomes(passed=2)   # each matches its own golden
