"""Builder options: one validated record, parsed from the ini string or the marker's dict, merged marker over ini."""
import pytest

from pytest_trt.core.build_options import BuildOptions, merge_build_options, parse_build_options
from pytest_trt.errors import SpecError


def test_build_options_from_marker_and_ini():
    ini = parse_build_options("workspace=2G optimization_level=5 tactic_sources=edge_mask_convolutions,JIT_CONVOLUTIONS")
    assert ini == BuildOptions(workspace=2 << 30, optimization_level=5,
                               tactic_sources=("EDGE_MASK_CONVOLUTIONS", "JIT_CONVOLUTIONS"))
    marker = parse_build_options({"optimization_level": 1, "hardware_compatibility": "AMPERE_PLUS"})
    merged = merge_build_options(ini, marker)
    assert merged.optimization_level == 1 and merged.workspace == 2 << 30 and merged.hardware_compatibility == "ampere_plus"
    assert parse_build_options({"workspace": "512MiB", "version_compatible": "yes"}).workspace == 512 << 20


@pytest.mark.parametrize("value, message", [
    ({"worksapce": 1}, "unknown option 'worksapce'; valid options are: workspace, optimization_level"),
    ({"workspace": "lots"}, "workspace='lots' is not a positive size"),
    ({"optimization_level": 9}, "optimization_level=9 must be an integer from 0 to 5"),
    ({"tactic_sources": "CUBLAS,FOO"}, "unknown source(s) FOO"),
    ({"hardware_compatibility": "turing"}, "must be one of: none, ampere_plus, same_compute_capability"),
    ({"version_compatible": "maybe"}, "must be true or false"),
    ("workspace", "'workspace' is not key=value"),
    ({"converter": "onnxconverter"}, "converter='onnxconverter' is not a converter; use casts (pytest-trt's casts, "
                                     "the default) or autocast (NVIDIA ModelOpt AutoCast, pip install "
                                     "'pytest-trt[autocast]')"),
])
def test_bad_build_options_are_one_sentence(value, message):
    with pytest.raises(SpecError) as info:
        parse_build_options(value)
    assert message in str(info.value)


def test_marker_options_without_ini_options_are_merged_over_the_defaults():
    marker = parse_build_options({"optimization_level": 2})
    assert merge_build_options(None, marker) == BuildOptions(optimization_level=2)
    assert parse_build_options(marker) is marker and parse_build_options(None) == parse_build_options("")


def test_converter_is_an_option_but_no_builder_setting():
    """converter= picks the fp16/bf16 converter; the engine key records it apart (only where a model is converted),
    so it leaves the builder settings' part of the key, and fp32 plans, alone."""
    ini = parse_build_options("converter=AutoCast workspace=1G")
    assert ini.converter == "autocast" and "converter" not in ini.key()
    assert ini.key() == parse_build_options("workspace=1G").key()
    assert merge_build_options(ini, parse_build_options({"converter": "casts"})).converter == "casts"
    assert merge_build_options(ini, parse_build_options({"optimization_level": 1})).converter == "autocast"
