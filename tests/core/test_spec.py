import pytest

from pytest_trt.errors import SpecError
from pytest_trt.core.spec import ARGUMENTS, merge_call, parse_marker, resolve_model_path

from models import scale_model


def test_unknown_argument_names_it_suggests_and_lists_valid(model):
    with pytest.raises(SpecError) as info:
        parse_marker((), {"model": str(model), "atoll": 1e-3})
    text = str(info.value)
    assert "unknown argument 'atoll' (did you mean 'atol'?)" in text
    assert "valid arguments are: " + ", ".join(ARGUMENTS) in text


@pytest.mark.parametrize("kwargs, fragment", [
    ({"atol": -1}, "trt_compare atol=-1 is not a non-negative number"),
    ({"rtol": "big"}, "trt_compare rtol='big' is not a non-negative number"),
    ({"atol": float("nan")}, "atol=nan is not a non-negative number"),
    ({"atol": True}, "atol=True is not a non-negative number"),
    ({"precision": "fp64"}, "precision 'fp64' is unknown"),
    ({"precision": "fp61"}, "(did you mean 'fp16'?)"),
    ({"precision": []}, "must be a precision name or a non-empty list"),
    ({"precision": ["fp16", "fp16"]}, "lists a precision twice"),
    ({"seed": -3}, "seed=-3 is not a non-negative integer"),
    ({"seed": 1.5}, "seed=1.5 is not a non-negative integer"),
    ({"outputs": [1]}, "outputs=[1] must be a list of output names"),
    ({"convention": "numpy"}, "convention='numpy' is unknown; use one of: allclose, either"),
    ({"equal_nan": "yes"}, "equal_nan='yes' is not True or False"),
    ({"shapes": [4, 16]}, "shapes=[4, 16] must be a dict"),
    ({"shapes": {"x": (4, 0)}}, "shapes['x'] = (4, 0) is not a tuple of positive ints"),
    ({"shapes": {"x": {"min": (1,), "opt": (4,)}}}, "must have exactly the keys 'min', 'opt' and 'max'"),
    ({"shapes": {"x": {"min": (4,), "opt": (2,), "max": (8,)}}}, "dim 0 needs min <= opt <= max, got 4, 2, 8"),
    ({"input_range": (1, 0)}, "input_range = (1, 0) is not (low, high) with low < high"),
    ({"tolerances": {"atol": 1e-3}}, "tolerances has a bare field 'atol'"),
    ({"tolerances": {"fp16": {"atl": 1}}}, "tolerances['fp16'] has unknown field 'atl'"),
    ({"tolerances": {"fp16": {"y": {"rtol": -1}}}}, "tolerances['fp16']['y'] rtol=-1 is not a non-negative number"),
    ({"tolerances": {"y": {"y2": {"atol": 1}}}}, "tolerances['y'] has unknown field 'y2'"),
    ({"tolerances": {"y": {"cosine": 2}}}, "cosine=2 is not a similarity in [-1, 1]"),
    ({"tolerances": {"y": {"percentile": (101, 1)}}}, "percentile=(101, 1) is not (q, limit)"),
    ({"tolerances": [1]}, "tolerances=[1] must be a dict keyed by precision or output name"),
])
def test_bad_values_name_argument_and_fix(model, kwargs, fragment):
    with pytest.raises(SpecError) as info:
        parse_marker((), {"model": str(model), **kwargs})
    assert fragment in str(info.value)


def test_model_resolution_test_dir_then_rootdir(tmp_path):
    (tmp_path / "tests").mkdir()
    root_model = scale_model(tmp_path / "models" / "m.onnx")
    assert resolve_model_path("models/m.onnx", tmp_path / "tests", tmp_path) == root_model
    local = scale_model(tmp_path / "tests" / "models" / "m.onnx")
    assert resolve_model_path("models/m.onnx", tmp_path / "tests", tmp_path) == local
    assert resolve_model_path(str(root_model), None, None) == root_model


def test_missing_model_lists_where_it_looked(tmp_path):
    with pytest.raises(SpecError) as info:
        parse_marker(("nope.onnx",), {}, tmp_path / "t", tmp_path)
    text = str(info.value)
    assert "trt_compare model 'nope.onnx' not found" in text
    assert str(tmp_path / "t" / "nope.onnx") in text and str(tmp_path / "nope.onnx") in text


def test_precision_list_parametrizes_string_does_not(model):
    assert parse_marker((model,), {"precision": ["fp32", "fp16"]}).parametrized
    spec = parse_marker((model,), {"precision": "fp16"})
    assert spec.precisions == ("fp16",) and not spec.parametrized


def test_merge_call_overrides_marker(model, tmp_path):
    spec = parse_marker((model,), {"atol": 1e-3, "seed": 1, "shapes": {"x": (2, 4)}})
    merged = merge_call(spec, {"rtol": 1e-2, "shapes": {"x": (3, 4)}}, tmp_path, tmp_path)
    assert merged.test_level == {"atol": 1e-3, "rtol": 1e-2}
    assert merged.shapes == {"x": (3, 4)} and merged.seed == 1
    with pytest.raises(SpecError, match="cannot be set per call"):
        merge_call(spec, {"precision": "fp16"}, tmp_path, tmp_path)


def test_two_positionals_rejected(model):
    with pytest.raises(SpecError, match="takes the model as its only positional argument"):
        parse_marker((model, 1e-3), {})


# ----------------------------------------------------------------- model={precision: path}

def test_model_mapping_names_each_precisions_file(tmp_path):
    fp32, fp16 = scale_model(tmp_path / "m.onnx"), scale_model(tmp_path / "m.fp16.onnx", factor=3.0)
    spec = parse_marker(({"fp32": "m.onnx", "fp16": "m.fp16.onnx"},), {"precision": ["fp32", "fp16", "bf16"]},
                        tmp_path, None)
    assert spec.model == fp32.resolve() and spec.model_for("fp32") == fp32.resolve()
    assert spec.model_for("fp16") == fp16.resolve() and spec.model_for("bf16") == fp32.resolve()  # bf16: converted
    call = merge_call(spec, {"model": "m.onnx"}, tmp_path, None)        # a plain path replaces the mapping
    assert call.model_for("fp16") == fp32.resolve() and call.models == {}
    call = merge_call(parse_marker((), {"model": "m.onnx", "precision": "fp16"}, tmp_path, None),
                      {"model": {"fp32": "m.onnx", "fp16": "m.fp16.onnx"}}, tmp_path, None)
    assert call.model_for("fp16") == fp16.resolve()                   # keys checked against the marker's precisions


@pytest.mark.parametrize("models, precision, message", [
    ({"fp32": "m.onnx", "fp61": "m.onnx"}, ["fp32", "fp16"],
     "trt_compare model['fp61'] is not a precision (did you mean 'fp16'?); the keys of model={...} are precisions "
     "the marker tests: fp32, fp16"),
    ({"fp32": "m.onnx", "half": "m.onnx"}, ["fp32", "fp16"], "model['half'] is not a precision (did you mean 'fp16'?)"),
    ({"fp32": "m.onnx", "bf16": "m.onnx"}, ["fp32", "fp16"],
     "trt_compare model['bf16'] names a precision the marker does not test; its precisions are: fp32, fp16 "
     "(add 'bf16' to precision= or remove the entry)"),
    ({"fp16": "m.onnx"}, "fp16",
     "trt_compare model={...} has no 'fp32' entry; the reference (onnxruntime) and its golden run the fp32 model: "
     "give it, e.g. model={'fp32': 'model.onnx', 'fp16': 'model.fp16.onnx'}"),
    ({"fp32": "m.onnx", "fp16": "gone.onnx"}, ["fp32", "fp16"], "trt_compare model['fp16'] 'gone.onnx' not found"),
    ({"fp32": "m.onnx", "fp16": 16}, ["fp32", "fp16"], "trt_compare model['fp16']=16 is not a path"),
])
def test_model_mapping_mistakes_are_one_sentence(tmp_path, models, precision, message):
    scale_model(tmp_path / "m.onnx")
    with pytest.raises(SpecError) as info:
        parse_marker((), {"model": models, "precision": precision}, tmp_path, None)
    assert message in str(info.value)


def test_model_mapping_in_a_call_is_checked_against_the_marker(tmp_path):
    scale_model(tmp_path / "m.onnx")
    spec = parse_marker((), {"model": "m.onnx", "precision": "fp32"}, tmp_path, None)
    with pytest.raises(SpecError, match=r"model\['fp16'\] names a precision the marker does not test; its "
                                        r"precisions are: fp32 "):
        merge_call(spec, {"model": {"fp32": "m.onnx", "fp16": "m.onnx"}}, tmp_path, None)
