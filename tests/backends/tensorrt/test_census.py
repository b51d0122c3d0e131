"""The precision census: TensorRT 8.6's engine inspector JSON (recorded on a GPU, under tests/data/census) read into
counts by precision, the sentences a check prints from it, and the TensorRT version guards and shape-tensor
planning that came with it."""
import json
from pathlib import Path

import onnx
import pytest

from pytest_trt.backends.tensorrt.census import classify, datatype, parse_engine_information
from pytest_trt.backends.tensorrt.plan import Flavor, plan_profiles, shape_tensor_inputs, check_within_profile
from pytest_trt.core.build_options import parse_build_options
from pytest_trt.core.onnx_wire import read_nodes
from pytest_trt.errors import BackendError, InputError
from pytest_trt.reports.census import census_change, census_short, census_text, shortfall

DATA = Path(__file__).resolve().parents[2] / "data" / "census"
EXPAND = Path(onnx.__file__).parent / "backend" / "test" / "data" / "simple"


def recorded(name: str):
    return parse_engine_information((DATA / name).read_text())


def layer(name, layer_type, inputs, outputs, tactic=None):
    entry = {"Name": name, "LayerType": layer_type,
             "Inputs": [{"Name": f"i{n}", "Format/Datatype": f} for n, f in enumerate(inputs)],
             "Outputs": [{"Name": f"o{n}", "Format/Datatype": f} for n, f in enumerate(outputs)]}
    if tactic:
        entry["TacticName"] = tactic
    return entry


@pytest.mark.parametrize("text, expected", [
    ("Row major linear FP32", "fp32"), ("Channel major FP16 format where channel % 2 == 0", "fp16"),
    ("Row major linear Int8 format", "int8"), ("Four wide channel vectorized row major Int8 format", "int8"),
    ("Row major linear Int32", "int32"), ("Row major linear BF16 format", "bf16"), ("Row major linear FP8", "fp8"),
    ("Row major linear Bool", "bool"), ("something else", None)])
def test_datatype_of_format_strings(text, expected):
    assert datatype(text) == expected


def test_fused_myelin_layers_from_tensorrt_86_are_opaque_and_never_judged():
    attention = recorded("attention.fp16.trt86.json").summary()
    assert attention == {"layers": 1, "compute": {}, "kinds": {"opaque": 1}, "opaque_io": ["fp32"], "detailed": True}
    lstm = recorded("lstm.fp16.trt86.json").summary()
    assert lstm["opaque_io"] == ["fp32", "int32"] and lstm["kinds"] == {"opaque": 1}
    assert census_text(lstm) == "no compute layers visible; 1 fused (Myelin, I/O fp32/int32: inside not reported)"
    assert shortfall("fp16", attention) is None and census_short(attention, "fp16") == "fused"


def test_layers_by_precision_movement_and_tf32_tactics():
    census = parse_engine_information(json.dumps({"Layers": [
        layer("reshape", "NoOp", ["Row major linear FP32"], ["Row major linear FP32"]),
        layer("Reformatting CopyNode for Input Tensor 0 to conv", "Reformat", ["Row major linear FP32"],
              ["Channel major FP16 format where channel % 2 == 0"]),
        layer("conv + relu", "CaskConvolution", ["Channel major FP16 format where channel % 2 == 0"],
              ["Channel major FP16 format where channel % 2 == 0"]),
        layer("qconv", "CaskConvolution", ["Row major linear Int8"], ["Row major linear FP32"]),
        layer("gemm", "CaskGemmMatrixMultiply", ["Row major linear FP32"], ["Row major linear FP32"],
              tactic="sm80_xmma_gemm_tf32f32_tf32f32_f32_nn_n_tilesize64x64x16"),
        layer("head", "CaskGemmMatrixMultiply", ["Row major linear FP32"], ["Row major linear FP32"],
              tactic="sm80_xmma_gemm_f32f32_f32f32_f32_nn_n"),
        layer("shape math", "ElementWise", ["Row major linear Int32"], ["Row major linear Int32"]),
    ], "Bindings": []}))
    summary = census.summary()
    assert summary["compute"] == {"int8": 1, "fp16": 1, "tf32": 1, "fp32": 1}
    assert summary["kinds"] == {"movement": 2, "compute": 4, "integer": 1}
    assert (summary["compute"]["fp16"], sum(summary["compute"].values())) == (1, 4)
    assert census_text(summary) == "int8 1, fp16 1, tf32 1, fp32 1 of 4 compute layers; 2 movement, 1 integer"
    assert census_short(summary, "fp16") == "fp16 1/4" and census_short(summary, "fp32") == "int8 1/4"  # a tie: the narrowest


def test_layer_names_only_plans_are_not_detailed():
    census = parse_engine_information(json.dumps({"Layers": ["a", "b"], "Bindings": ["x", "y"]}))
    assert not census.detailed and census.summary()["layers"] == 2
    assert shortfall("fp16", census.summary()) is None
    assert "precisions not recorded" in census_text(census.summary())
    with pytest.raises(BackendError, match="no 'Layers' list"):
        parse_engine_information("{}")


def test_shortfall_sentence_and_share():
    fp32_only = {"layers": 3, "compute": {"fp32": 3}, "kinds": {"compute": 3}, "opaque_io": [], "detailed": True}
    text = shortfall("fp16", fp32_only)
    assert text.startswith("fp16 requested, 0 of 3 compute layers run in half precision: this check compared an "
                           "engine that runs in fp32."), text
    assert shortfall("fp32", fp32_only) is None and shortfall("tf32", fp32_only) is None  # tf32: not visible
    mixed = {**fp32_only, "compute": {"fp16": 1, "fp32": 3}}
    assert shortfall("fp16", mixed) is None
    assert "less than the 50% required" in shortfall("fp16", mixed, 0.5)
    assert shortfall("int8", {**fp32_only, "compute": {"int8": 5, "fp32": 1}}, 0.5) is None


def test_census_change_since_the_golden():
    before = {"layers": 6, "compute": {"fp16": 5, "fp32": 1}, "kinds": {}, "opaque_io": [], "detailed": True}
    now = {**before, "compute": {"fp32": 6}}
    assert census_change(before, before) is None and census_change(None, now) is None
    assert census_change(before, now) == ("layer precisions changed since the engine golden was recorded: fp16 5, "
                                          "fp32 1 of 6 compute layers -> fp32 6 of 6 compute layers")


def test_classify_keeps_tactic_and_types():
    found = classify(layer("c", "CaskConvolution", ["Row major linear FP32"], ["Row major linear FP16"], "t"))
    assert (found.kind, found.precision, found.io_types, found.tactic) == ("compute", "fp16", ("fp32", "fp16"), "t")


# ------------------------------------------------------------------ TensorRT version guards

@pytest.mark.parametrize("version, options, problem", [
    ("8.6.1", "hardware_compatibility=ampere_plus", None),
    ("8.6.1", "hardware_compatibility=same_compute_capability", "TensorRT 8.6.1 has no hardware_compatibility="
                                                                "same_compute_capability (TensorRT's Python bindings "
                                                                "have it from 10.9)"),
    ("10.8.0", "hardware_compatibility=same_compute_capability", "from 10.9"),
    ("10.9.0", "hardware_compatibility=same_compute_capability", None),
    ("10.13.0", "tactic_sources=CUBLAS,JIT_CONVOLUTIONS", None),
    ("11.0.0", "tactic_sources=CUBLAS,CUDNN,JIT_CONVOLUTIONS", "TensorRT 11.0.0 has no tactic source CUBLAS, CUDNN "
                                                             "(TensorRT 11 removed cuBLAS, cuBLASLt and cuDNN tactics)"),
    ("11.0.0", "tactic_sources=EDGE_MASK_CONVOLUTIONS", None),
])
def test_option_guards_name_the_version(version, options, problem):
    found = Flavor.parse("tensorrt", version).option_problem(parse_build_options(options))
    if problem is None:
        assert found is None
    else:
        assert problem in found and "remove it from the build options" in found, found


# ------------------------------------------------------------------ shape tensors

@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_onnx_expand_models_have_a_shape_tensor_input(number):
    data = (EXPAND / f"test_expand_shape_model{number}" / "model.onnx").read_bytes()
    assert shape_tensor_inputs(read_nodes(data).nodes, ["X", "shape"]) == ("shape",)


def test_shape_tensors_through_shape_arithmetic_and_not_data_inputs(tmp_path):
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["n"], ["n64"], to=TensorProto.INT64),
             helper.make_node("Concat", ["n64", "rest"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"]),
             helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in
                                           [("x", TensorProto.FLOAT, [2, 6]), ("n", TensorProto.INT32, [1]),
                                            ("ids", TensorProto.INT64, [3]), ("rest", TensorProto.INT64, [1])]],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(__import__("numpy").ones((10, 4), "float32"), "table")])
    data = helper.make_model(graph).SerializeToString()
    assert shape_tensor_inputs(read_nodes(data).nodes, ["x", "n", "ids", "rest"]) == ("n", "rest")


def test_shape_values_in_the_profile_and_checked_at_run():
    import numpy as np

    profile = plan_profiles([], {}, {"shape": (3, 1)})
    assert profile.values == (("shape", (3, 1), (3, 1), (3, 1)),)
    assert profile.as_dict() == {"shape": {"values": {"min": [3, 1], "opt": [3, 1], "max": [3, 1]}}}
    check_within_profile(profile, {"shape": np.array([3, 1])})
    with pytest.raises(InputError, match=r"shape-tensor input 'shape' holds \[1, 3\], but the engine was built for "
                                         r"\[3, 1\]"):
        check_within_profile(profile, {"shape": np.array([1, 3])})
    assert plan_profiles([], {}, {}) is None


def test_stale_plan_is_replaced_under_its_key(tmp_path):
    from pytest_trt.backends.tensorrt.cache import EngineCache

    cache = EngineCache(tmp_path)
    first = cache.get_or_build("k" * 64, {"model_file": "m.onnx"}, lambda timing: (b"old plan", None))
    assert first.status == "built"
    replaced = cache.replace("k" * 64, b"old plan", {"model_file": "m.onnx"}, lambda timing: (b"new plan", None))
    assert (replaced.status, replaced.plan) == ("rebuilt", b"new plan")
    # another process replaced it meanwhile: taken as it is, not rebuilt again
    again = cache.replace("k" * 64, b"old plan", {"model_file": "m.onnx"},
                          lambda timing: pytest.fail("rebuilt a plan already replaced"))
    assert (again.status, again.plan) == ("loaded", b"new plan")
    assert cache.get_or_build("k" * 64, {}, lambda timing: pytest.fail("built")).plan == b"new plan"


def test_rtx_builds_the_onnx_expand_models_from_their_shape_values(tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed (pip install 'pytest-trt[rtx]')")
    import pytest_trt

    model = EXPAND / "test_expand_shape_model3" / "model.onnx"
    with pytest.raises(BackendError, match="input 'shape' of model.onnx is a shape tensor"):
        pytest_trt.build_engine(model, backend="tensorrt_rtx")
    plan = pytest_trt.build_engine(model, backend="tensorrt_rtx", shape_values={"shape": [3, 1, 3]}, cache_dir=tmp_path)
    meta = json.loads(next((tmp_path / "plans").glob("*.json")).read_text())
    assert meta["profile"] == {"shape": {"values": {"min": [3, 1, 3], "opt": [3, 1, 3], "max": [3, 1, 3]}}}
    assert len(plan) > 1000
    # other values are another engine
    pytest_trt.build_engine(model, backend="tensorrt_rtx", shape_values={"shape": [3, 3, 3]}, cache_dir=tmp_path)
    assert len(list((tmp_path / "plans").glob("*.plan"))) == 2


@pytest.mark.parametrize("name, compute, warned", [
    ("wide_mlp.fp16", {"fp16": 4}, False),              # selfcheck's 3x1024 MLP: the flag realized
    ("mlp.fp16", {"fp32": 2}, True),                    # examples/models/mlp.onnx: TensorRT kept fp32
    ("resnet.fp16", {"fp32": 8}, True),                 # an exported 16x16 ResNet: fp32 too
    ("resnet_int8.int8", {"int8": 6, "fp32": 2}, False),  # ModelOpt's Q/DQ ResNet at int8
])
def test_census_of_engines_tensorrt_86_built(name, compute, warned):
    summary = recorded(f"{name}.trt86.json").summary()
    assert summary["detailed"] and summary["compute"] == compute
    precision = name.rsplit(".", 1)[1]
    assert (shortfall(precision, summary) is not None) == warned


def test_layers_tensorrt_10_lists_from_inside_myelin_graphs():
    """TensorRT 10/11 list the layers of a fused Myelin graph with lower-case types and types written "Float",
    "Half" (the layer below is the one TensorRT's sampleEditableTimingCache README shows, as JSON)."""
    gemm = layer("matMul1_myl0_0", "gemm", ["Float", "Float"], ["Float"],
                 tactic="sm80_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize32x32x64_stage3_warpsize2x1x2_tensor16x8x8")
    half = layer("matMul2_myl0_1", "gemm", ["Half", "Half"], ["Half"], tactic="sm80_xmma_gemm_f16f16_f16f32_f32")
    bf16 = layer("add_myl0_2", "kgen", ["BFloat16"], ["BFloat16"])
    steps = [layer("reshape_myl0_3", "reshape", ["Float"], ["Float"]), layer("__myl_call", "shape_call", [], [])]
    summary = parse_engine_information(json.dumps({"Layers": [gemm, half, bf16, *steps]})).summary()
    assert summary["compute"] == {"fp16": 1, "bf16": 1, "tf32": 1} and summary["kinds"]["movement"] == 2
    assert shortfall("fp16", summary) is None and census_short(summary, "bf16") == "bf16 1/3"
