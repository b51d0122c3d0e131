"""Pure build/run planning: flavors, precision realization, profiles, dtypes, buffers."""
import numpy as np
import pytest

from pytest_trt.backends.tensorrt.plan import (Flavor, TensorIO, check_within_profile, engine_inputs, plan_outputs,
                                               plan_profiles, realize_precision, restore_output_dtypes, shapes_for_run)
from pytest_trt.errors import BackendError, InputError
from pytest_trt.core.model import TensorSpec

TRT86, TRT10, TRT11 = Flavor.parse("tensorrt", "8.6.1"), Flavor.parse("tensorrt", "10.13.0.35"), Flavor.parse("tensorrt", "11.0.0")
RTX = Flavor.parse("tensorrt_rtx", "1.7.1.116")


def test_flavor_capabilities():
    assert TRT86.needs_explicit_batch_flag and TRT86.narrows_int64 and not TRT86.has_progress_monitor
    assert not TRT10.needs_explicit_batch_flag and TRT10.has_progress_monitor and TRT10.has_timing_cache
    assert TRT11.strongly_typed_only and RTX.strongly_typed_only and not RTX.has_timing_cache
    assert RTX.label == "TensorRT-RTX 1.7.1.116" and TRT86.label == "TensorRT 8.6.1"


@pytest.mark.parametrize("flavor, precision, expected", [
    (TRT86, "fp32", "no precision flags, TF32 off"),
    (TRT86, "tf32", "no precision flags, TF32 on"),
    (TRT86, "fp16", "flags FP16, TF32 off"),
    (TRT10, "bf16", "flags BF16, TF32 off"),
    (TRT11, "fp16", "no precision flags, TF32 off, model converted to float16"),
    (RTX, "bf16", "no precision flags, TF32 off, model converted to bfloat16"),
])
def test_precision_realized_per_flavor(flavor, precision, expected):
    assert realize_precision(flavor, precision).describe() == expected


def test_unbuildable_precisions_say_why():
    with pytest.raises(BackendError, match="TensorRT 8.6.1 has no BF16 builder flag"):
        realize_precision(TRT86, "bf16")
    with pytest.raises(BackendError, match="int8 needs a model with QuantizeLinear/DequantizeLinear"):
        realize_precision(TRT10, "int8", has_qdq=False)
    assert realize_precision(TRT10, "int8", has_qdq=True).flags == ("INT8",)
    assert realize_precision(RTX, "fp8", has_qdq=True).flags == ()


INPUTS = (TensorSpec("x", "float32", ("batch", 16)), TensorSpec("m", "int64", (2, 3)))


def test_profiles_from_shapes():
    profile = plan_profiles(INPUTS, {"x": {"min": (1, 16), "opt": (4, 16), "max": (8, 16)}})
    assert profile.as_dict() == {"x": {"min": [1, 16], "opt": [4, 16], "max": [8, 16]}}
    assert plan_profiles(INPUTS, {"x": (4, 16)}).shapes == (("x", (4, 16), (4, 16), (4, 16)),)
    assert plan_profiles(INPUTS[1:], {}) is None
    with pytest.raises(InputError, match=r"input 'x' dim 0 \('batch'\) is dynamic and no shape was given"):
        plan_profiles(INPUTS, {})
    with pytest.raises(InputError, match="has 3 dims but input x"):
        plan_profiles(INPUTS, {"x": (1, 2, 3)})


def test_given_arrays_complete_the_profile_and_must_fit_it():
    arrays = {"x": np.zeros((5, 16), np.float32)}
    assert shapes_for_run(INPUTS, {}, arrays) == {"x": (5, 16)}
    assert shapes_for_run(INPUTS, {"x": (2, 16)}, arrays) == {"x": (2, 16)}
    profile = plan_profiles(INPUTS, {"x": {"min": (1, 16), "opt": (2, 16), "max": (4, 16)}})
    with pytest.raises(InputError, match=r"dim 0 = 5 is outside the engine's profile \[1, 4\]"):
        check_within_profile(profile, arrays)


IO = [TensorIO("x", True, "float32", (-1, 16)), TensorIO("ids", True, "int32", (2,)),
      TensorIO("y", False, "float16", (-1, 8)), TensorIO("n", False, "int32", (-1,))]


def test_engine_inputs_cast_and_narrow_int64():
    prepared = engine_inputs(IO, {"x": np.ones((2, 16), np.float64), "ids": np.array([1, 2], np.int64)})
    assert prepared["x"].dtype == np.float32 and prepared["ids"].dtype == np.int32
    with pytest.raises(InputError, match="holds int64 values outside int32"):
        engine_inputs(IO, {"x": np.ones((2, 16), np.float32), "ids": np.array([1, 2**40], np.int64)})
    with pytest.raises(InputError, match="input 'x' is int32 but the engine takes float32"):
        engine_inputs(IO, {"x": np.ones((2, 16), np.int32), "ids": np.array([1, 2], np.int32)})
    with pytest.raises(InputError, match="engine inputs 'ids' got no array"):
        engine_inputs(IO, {"x": np.ones((2, 16), np.float32)})


def test_output_plan_and_dtype_restore():
    buffers, dynamic = plan_outputs(IO, {"y": (3, 8), "n": (-1,)})
    assert [(b.name, b.shape, b.nbytes) for b in buffers] == [("y", (3, 8), 48)] and dynamic == ["n"]
    restored = restore_output_dtypes({"label": np.array([1], np.int32)}, [TensorSpec("label", "int64", (1,))])
    assert restored["label"].dtype == np.int64


def test_build_option_missing_in_this_tensorrt_is_one_sentence():
    from pytest_trt.backends.tensorrt.build import _require
    from pytest_trt.backends.tensorrt.plan import Flavor
    from pytest_trt.errors import BackendError

    class ConfigWithoutTacticSources:  # stands in for a TensorRT whose builder config lacks the setter
        pass

    with pytest.raises(BackendError) as info:
        _require(ConfigWithoutTacticSources(), "set_tactic_sources", Flavor.parse("tensorrt", "11.0.0"), "tactic_sources")
    assert str(info.value) == ("TensorRT 11.0.0 has no set_tactic_sources, so the build option tactic_sources cannot be "
                               "used with it; remove tactic_sources from the build options (--trt-build-options, the "
                               "marker's or build_engine()'s build=)")


def test_each_release_exposes_tensors_its_own_way():
    from pytest_trt.backends.tensorrt.plan import Flavor

    assert Flavor.parse("tensorrt", "8.6.1").observation == "outputs"
    assert Flavor.parse("tensorrt", "10.0.1").observation == "debug"
    assert Flavor.parse("tensorrt", "10.11.0").observation == "debug"
    assert Flavor.parse("tensorrt", "10.12.0").observation == "unfused"
    assert Flavor.parse("tensorrt", "11.0.0").observation == "unfused"
    assert Flavor.parse("tensorrt_rtx", "1.7.1").observation == "unfused"
