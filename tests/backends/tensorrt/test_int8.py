"""int8 from Q/DQ models: the ModelOpt-quantized ResNet of examples/quantize/ and hand-made per-channel Q/DQ Convs,
checked against the rules TensorRT's ONNX parser sets for Q/DQ, run on onnxruntime and built with TensorRT-RTX on CPU.

TensorRT 8.6's parser rules (onnx-tensorrt release/8.6-GA), which the README's "Test an int8 (Q/DQ) engine" explains:
zero points all zero (symmetric), int8 not uint8, per-channel scales only along a weight's output channels
(axis 0 for Conv), and a Conv whose weights come from a DequantizeLinear must name its ``kernel_shape``.
"""
import importlib.util
import logging

import numpy as np
import onnx
import pytest

import pytest_trt
from pytest_trt.core.model import has_quantize_nodes, load_model_info
from pytest_trt.backends.tensorrt.plan import Flavor, realize_precision
from pytest_trt.errors import BackendError, ModelError

from models import qdq_conv_model
from shared import ROOT

QUANTIZE = ROOT / "examples" / "quantize"
FP32, INT8 = QUANTIZE / "resnet.onnx", QUANTIZE / "resnet.int8.onnx"
SHAPES = {"image": (2, 3, 64, 64)}


def trt_qdq_problems(path) -> list[str]:
    """What in a Q/DQ model TensorRT 8.6's ONNX parser refuses, one sentence per problem."""
    graph = onnx.load(str(path)).graph
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    problems = []
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zero = inits.get(node.input[2]) if len(node.input) > 2 else None
            if zero is None:
                problems.append(f"{node.name}: no zero point (8.6 wants an int8 zero point of 0)")
            elif zero.dtype != np.int8 or zero.any():
                problems.append(f"{node.name}: zero point {zero.dtype} {zero.ravel()[:3]} (must be int8 zeros)")
            scale = inits[node.input[1]]
            source = producer.get(node.input[0])
            on_weights = node.input[0] in inits or (source is not None and source.op_type == "QuantizeLinear"
                                                    and source.input[0] in inits)
            if scale.size > 1 and not on_weights:
                problems.append(f"{node.name}: per-channel scales on an activation (per tensor only)")
        if node.op_type == "Conv":
            weights = producer.get(node.input[1])
            if weights is not None and weights.op_type == "DequantizeLinear":
                axis = next((a.i for a in weights.attribute if a.name == "axis"), 1)
                if inits[weights.input[1]].size > 1 and axis != 0:
                    problems.append(f"{node.name}: weight scales along axis {axis} (must be 0, output channels)")
                if not any(a.name == "kernel_shape" for a in node.attribute):
                    problems.append(f"{node.name}: no kernel_shape attribute (8.6: 'The input tensor shape misaligns "
                                    "with the input kernel shape')")
    return problems


def has_qdq(path) -> bool:
    return has_quantize_nodes(load_model_info(path))


def test_modelopt_model_has_qdq_that_tensorrt_accepts():
    assert has_qdq(INT8) and not has_qdq(FP32)
    graph = onnx.load(str(INT8)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("QuantizeLinear") == ops.count("DequantizeLinear") == 13
    producer = {out: node for node in graph.node for out in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) == 6 and all(producer[n.input[0]].op_type == producer[n.input[1]].op_type == "DequantizeLinear"
                                   for n in convs)  # every Conv takes quantized activations and weights
    assert trt_qdq_problems(INT8) == []
    assert onnx.load(str(INT8)).opset_import[0].version == 19  # ModelOpt 0.47 writes int8 models at opset 19 at least


def _ort(path, x, optimized=True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def test_onnxruntime_runs_the_int8_model_close_to_fp32():
    """Measured here on these inputs: int8 vs fp32 max 6.7e-4 (outputs within +-0.25); int8 kernels vs float
    emulation max 1.6e-4."""
    x = pytest_trt.make_inputs(str(INT8), shapes={"image": (8, 3, 64, 64)}, seed=0)["image"]
    fp32, int8, emulated = _ort(FP32, x), _ort(INT8, x), _ort(INT8, x, optimized=False)
    quantization = np.abs(int8 - fp32).max()
    assert 1e-5 < quantization < 2e-3, quantization            # quantized, and not by much
    assert (fp32.argmax(1) == int8.argmax(1)).all()
    assert np.abs(int8 - emulated).max() < quantization        # two executions of one Q/DQ model agree more closely


@pytest.mark.parametrize("flavor, flags", [(Flavor.parse("tensorrt", "8.6.1"), ("INT8",)),
                                           (Flavor.parse("tensorrt", "10.13.0"), ("INT8",)),
                                           (Flavor.parse("tensorrt", "11.0.0"), ()),
                                           (Flavor.parse("tensorrt_rtx", "1.7.1.116"), ())])
def test_int8_recipe_per_flavor(flavor, flags):
    recipe = realize_precision(flavor, "int8", has_qdq=has_qdq(INT8))
    assert (recipe.flags, recipe.needs_qdq, recipe.tf32, recipe.convert_to) == (flags, True, False, None)
    with pytest.raises(BackendError, match="int8 needs a model with QuantizeLinear/DequantizeLinear"):
        realize_precision(flavor, "int8", has_qdq=has_qdq(FP32))


needs_rtx = pytest.mark.skipif(importlib.util.find_spec("tensorrt_rtx") is None,
                               reason="tensorrt-rtx-cu13 is not installed (pip install 'pytest-trt[rtx]')")


def _build(model, caplog, **kwargs):
    with caplog.at_level(logging.DEBUG, logger="pytest_trt.tensorrt"):
        return pytest_trt.build_engine(model, backend="tensorrt_rtx", precision="int8", **kwargs)


@needs_rtx
def test_tensorrt_rtx_builds_the_modelopt_model_in_int8(caplog):
    plan = _build(INT8, caplog, shapes=SHAPES)
    assert len(plan) > 10_000
    assert "QDQ graph optimizer quantization pass" in caplog.text  # explicit quantization, not a float build
    with pytest.raises(BackendError, match="int8 needs a model with QuantizeLinear/DequantizeLinear"):
        pytest_trt.build_engine(FP32, backend="tensorrt_rtx", precision="int8", shapes=SHAPES)


@needs_rtx
def test_conv_without_kernel_shape_runs_on_onnxruntime_and_builds_with_tensorrt_rtx(tmp_path, caplog):
    """TensorRT 8.6 refuses the first model ('The input tensor shape misaligns with the input kernel shape': its
    Conv importer reads the kernel size of DequantizeLinear-fed weights from kernel_shape only); TensorRT-RTX's
    parser takes both. onnxruntime computes the same for both."""
    without = qdq_conv_model(tmp_path / "without.onnx", kernel_shape=False)
    named = qdq_conv_model(tmp_path / "named.onnx")
    assert trt_qdq_problems(without) == ["conv: no kernel_shape attribute (8.6: 'The input tensor shape misaligns "
                                         "with the input kernel shape')"]
    assert trt_qdq_problems(named) == []
    x = {"x": np.random.default_rng(1).uniform(-1, 1, (1, 4, 8, 8)).astype(np.float32)}
    np.testing.assert_array_equal(pytest_trt.run_onnxruntime(without, x)["y"], pytest_trt.run_onnxruntime(named, x)["y"])
    assert len(_build(without, caplog)) > 10_000 and len(_build(named, caplog)) > 10_000


@needs_rtx
@pytest.mark.parametrize("variant, problem", [
    ({"zero_point": 3}, "x_q: zero point int8 [3] (must be int8 zeros)"),
    ({"dtype": "uint8", "zero_point": 128}, "x_q: zero point uint8 [128] (must be int8 zeros)"),
])
def test_asymmetric_qdq_is_refused_by_tensorrt_rtx(tmp_path, caplog, variant, problem):
    model = qdq_conv_model(tmp_path / "m.onnx", **variant)
    assert problem in trt_qdq_problems(model)
    pytest_trt.run_onnxruntime(model, {"x": np.zeros((1, 4, 8, 8), np.float32)})  # valid ONNX all the same
    with pytest.raises(ModelError, match=r"cannot parse m\.onnx: .*Non-zero zero point is not supported"):
        _build(model, caplog)


@needs_rtx
@pytest.mark.parametrize("variant, problem, warning", [
    ({"dtype": "uint8"}, "x_q: zero point uint8 [0] (must be int8 zeros)", "UINT8 zero_point only on DLA"),
    ({"zero_point": None}, "x_q: no zero point (8.6 wants an int8 zero point of 0)", None),
])
def test_uint8_qdq_builds_on_tensorrt_rtx_as_int8(tmp_path, caplog, variant, problem, warning):
    """A trap: uint8 activations with zero point 0 (also what a Q/DQ without a zero point input is, in ONNX) build,
    but TensorRT-RTX imports them as int8 (the first with a warning, the second silently), keeping the negative
    values that onnxruntime's uint8 clips to 0: the engine computes another function than the reference."""
    model = qdq_conv_model(tmp_path / "m.onnx", **variant)
    assert problem in trt_qdq_problems(model)
    x = {"x": np.random.default_rng(1).uniform(-1, 1, (1, 4, 8, 8)).astype(np.float32)}
    clipped = pytest_trt.run_onnxruntime(model, x)["y"]
    signed = pytest_trt.run_onnxruntime(qdq_conv_model(tmp_path / "int8.onnx"), x)["y"]
    assert np.abs(clipped - signed).max() > 1.0
    assert len(_build(model, caplog)) > 10_000
    assert "x_q -> (1, 4, 8, 8)[INT8]" in caplog.text  # the parser records x_q as int8
    if warning:
        assert warning in caplog.text and "Defaulting to INT8" in caplog.text
    else:
        assert "UINT8" not in caplog.text


@needs_rtx
def test_per_channel_activation_scales_build_on_tensorrt_rtx(tmp_path, caplog):
    """8.6's parser assumes per-channel scales belong to weights (KCRS); TensorRT-RTX builds them on activations."""
    model = qdq_conv_model(tmp_path / "m.onnx", activation_axis=1)
    assert trt_qdq_problems(model) == ["x_q: per-channel scales on an activation (per tensor only)",
                                       "x_dq: per-channel scales on an activation (per tensor only)"]
    assert len(_build(model, caplog)) > 10_000


@needs_rtx
def test_weight_scales_along_input_channels_build_on_tensorrt_rtx(tmp_path, caplog):
    """8.6's parser assumes per-channel scales are a weight's output channels (KCRS) and only counts them;
    TensorRT-RTX builds axis 1 too, so a build here does not show that TensorRT takes it: keep axis 0."""
    model = qdq_conv_model(tmp_path / "m.onnx", weight_axis=1)
    assert trt_qdq_problems(model) == ["conv: weight scales along axis 1 (must be 0, output channels)"]
    assert len(_build(model, caplog)) > 10_000


def test_marker_checks_the_int8_model_at_precision_int8(repo):
    """Without a GPU the engine side is skipped with its reason, and the reference (onnxruntime running the Q/DQ
    model) is recorded, then checked against its golden."""
    repo.makepyfile(test_q=f'''
        import pytest

        @pytest.mark.trt_compare(model={str(INT8)!r}, precision=["int8"], shapes={{"image": (2, 3, 64, 64)}},
                                 tolerances={{"int8": {{"atol": 1e-3, "rtol": 1e-2}}}})
        def test_resnet(trt_compare, trt_precision):
            result = trt_compare()
            assert trt_precision == "int8" and result.reference["logits"].shape == (2, 10)
    ''')
    repo.runpytest("--update-golden").assert_outcomes(passed=1)
    assert (repo.path / "golden" / "test_q" / "test_resnet" / "reference.npz").is_file()
    result = repo.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*checks: 1, 1 passed*"])


def test_int8_on_a_model_without_qdq_fails_even_where_the_engine_side_is_skipped(repo):
    """A CPU job must not pass an int8 check that no GPU could ever build: the model is judged, not the machine."""
    repo.makepyfile(test_q=f'''
        import pytest

        @pytest.mark.trt_compare(model={str(FP32)!r}, precision=["fp32", "int8"], shapes={{"image": (2, 3, 64, 64)}})
        def test_resnet(trt_compare):
            trt_compare()
    ''')
    result = repo.runpytest("--update-golden", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*int8 needs a model with QuantizeLinear/DequantizeLinear (Q/DQ) nodes, and "
                                 "resnet.onnx has none; pytest-trt does not calibrate*"])
