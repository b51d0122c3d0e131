"""The real build path with TensorRT-RTX on CPU: parse errors, profiles, fp16 conversion, engine cache."""
import json
import subprocess
import sys
import warnings
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import pytest_trt
from pytest_trt.backends.tensorrt.cache import EngineCache, EngineCacheWarning
from pytest_trt.errors import InputError, ModelError

from models import scale_model, two_io_model
from shared import AUTOCAST_MISSING

pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx-cu13 is not installed (pip install 'pytest-trt[rtx]')")
EXAMPLES = pytest_trt.__file__.rsplit("/", 2)[0] + "/examples/models"
RTX = "tensorrt_rtx"


def build(model, cache, **kwargs):
    return pytest_trt.build_engine(model, backend=RTX, cache_dir=cache, **kwargs)


def events():
    from pytest_trt.backends.registry import get_backend

    return get_backend(RTX).events


def test_dynamic_model_builds_with_profile_and_needs_shapes(tmp_path):
    with pytest.raises(InputError, match=r"input 'x' dim 0 \('batch'\) is dynamic and no shape was given"):
        build(f"{EXAMPLES}/mlp.onnx", None)
    plan = build(f"{EXAMPLES}/mlp.onnx", None, shapes={"x": {"min": (1, 16), "opt": (4, 16), "max": (64, 16)}})
    assert len(plan) > 1000


def test_unsupported_op_names_node_and_operator(tmp_path):
    graph = helper.make_graph([helper.make_node("FancyOp", ["x"], ["y"], name="my_fancy_node", domain="example.com")],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.com", 1)])
    onnx.save(model, str(tmp_path / "fancy.onnx"))
    with pytest.raises(ModelError) as info:
        build(tmp_path / "fancy.onnx", None)
    text = str(info.value)
    assert "cannot parse fancy.onnx" in text and "my_fancy_node" in text and "FancyOp" in text, text


@pytest.mark.parametrize("model, shapes", [("attention.onnx", {"tokens": (1, 8, 32)}), ("two_heads.onnx", {})])
def test_fp16_builds_from_converted_model(tmp_path, model, shapes):
    before = len(events())
    plan = build(f"{EXAMPLES}/{model}", tmp_path, precision="fp16", shapes=shapes)
    meta = json.loads(next((tmp_path / "plans").glob("*.json")).read_text())
    assert meta["realization"]["convert_to"] == "float16" and meta["converter"] == "pytest-trt casts v1"
    assert meta["plan_bytes"] == len(plan) and events()[before]["status"] == "built"


def test_cache_hit_then_invalidation_by_weights_and_options(tmp_path):
    model = scale_model(tmp_path / "m.onnx", dims=(2, 4), factor=2.0)
    cache = tmp_path / "cache"
    before = len(events())
    first = build(model, cache)
    assert build(model, cache) == first
    build(model, cache, build={"optimization_level": 1})          # other options: another plan
    scale_model(tmp_path / "m.onnx", dims=(2, 4), factor=3.0)      # same names, other weights
    build(model, cache)
    assert [e["status"] for e in events()[before:]] == ["built", "loaded", "built", "built"]
    assert len(list((cache / "plans").glob("*.plan"))) == 3
    index = json.loads((cache / "index.json").read_text())
    assert len(index) == 3 and all("m.onnx | fp32 | tensorrt_rtx" in line for line in index.values())


@pytest.mark.parametrize("damage", ["truncate", "flip", "sidecar"])
def test_corrupt_plan_is_rebuilt_with_a_warning(tmp_path, damage):
    model = scale_model(tmp_path / "m.onnx", dims=(2, 4))
    cache = tmp_path / "cache"
    good = build(model, cache)
    plan = next((cache / "plans").glob("*.plan"))
    if damage == "truncate":
        plan.write_bytes(good[: len(good) // 2])
    elif damage == "flip":
        data = bytearray(good)
        data[len(data) // 2] ^= 0x10
        plan.write_bytes(bytes(data))
    else:
        plan.with_suffix(".json").write_text("{")
    with pytest.warns(EngineCacheWarning, match="rebuilt it"):
        again = build(model, cache)
    assert len(again) == len(good) and events()[-1]["status"] == "rebuilt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build(model, cache) == again  # intact now: loaded, no warning


def test_plan_recorded_under_another_key_is_not_loaded(tmp_path):
    cache = EngineCache(tmp_path)
    cache.get_or_build("a" * 64, {}, lambda timing: (b"plan-a", None))
    (tmp_path / "plans" / ("a" * 64 + ".plan")).rename(tmp_path / "plans" / ("b" * 64 + ".plan"))
    (tmp_path / "plans" / ("a" * 64 + ".json")).rename(tmp_path / "plans" / ("b" * 64 + ".json"))
    with pytest.warns(EngineCacheWarning, match="records another key"):
        outcome = cache.get_or_build("b" * 64, {}, lambda timing: (b"plan-b", None))
    assert outcome.plan == b"plan-b" and outcome.status == "rebuilt"


def test_timing_cache_is_checksummed(tmp_path):
    cache = EngineCache(tmp_path)
    seen = []
    cache.get_or_build("1" * 64, {}, lambda timing: (seen.append(timing) or b"p1", b"timing-bytes"), timing="t")
    cache.get_or_build("2" * 64, {}, lambda timing: (seen.append(timing) or b"p2", b"timing-bytes-2"), timing="t")
    path = tmp_path / "timing" / "t.cache"
    path.write_bytes(path.read_bytes()[:-1] + b"X")
    with pytest.warns(EngineCacheWarning, match="timing cache .* fails its checksum"):
        cache.get_or_build("3" * 64, {}, lambda timing: (seen.append(timing) or b"p3", None), timing="t")
    assert seen == [None, b"timing-bytes", None]


def test_parallel_processes_build_a_key_once(tmp_path):
    """Four processes ask for one key at once: one builds, three wait on the lock and load."""
    script = (
        "import sys, time, json\n"
        "from pytest_trt.backends.tensorrt.cache import EngineCache\n"
        "def slow(timing):\n"
        "    time.sleep(0.5); return b'plan', None\n"
        "print(EngineCache(sys.argv[1]).get_or_build('k' * 64, {}, slow).status)\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    statuses = sorted(p.communicate()[0].strip() for p in procs)
    assert statuses == ["built", "loaded", "loaded", "loaded"]


def test_engine_dir_shared_by_two_tensorrt_versions_keeps_both(tmp_path, monkeypatch):
    """Two CI jobs on different TensorRT versions share one engine dir: each keeps and reuses its own plan.
    Only one TensorRT-RTX is installable here, so the second version is this one reporting another
    version string (a stand-in for a second install); the builds, files, locks and index are real."""
    import tensorrt_rtx

    model = scale_model(tmp_path / "m.onnx", dims=(2, 4))
    cache = tmp_path / "cache"
    real = tensorrt_rtx.__version__
    before = len(events())
    first = build(model, cache)
    monkeypatch.setattr(tensorrt_rtx, "__version__", real + ".other")
    build(model, cache)
    build(model, cache)
    monkeypatch.setattr(tensorrt_rtx, "__version__", real)
    assert build(model, cache) == first
    assert [e["status"] for e in events()[before:]] == ["built", "built", "loaded", "loaded"]
    index = json.loads((cache / "index.json").read_text())
    assert sorted(line.split(" | ")[2] for line in index.values()) == [f"tensorrt_rtx {real}",
                                                                       f"tensorrt_rtx {real}.other"]
    assert len(list((cache / "plans").glob("*.plan"))) == 2
    versions = {json.loads(p.read_text())["tensorrt"]["version"] for p in (cache / "plans").glob("*.json")}
    assert versions == {real, real + ".other"}


# ------------------------------------------------- converters and the test's own reduced-precision file

TORCH = Path(__file__).resolve().parents[2] / "data" / "torch"   # PyTorch exports (benchmarks/torch_models.py)
CNN_PROFILE = {"x": {"min": (1, 3, 32, 32), "opt": (2, 3, 32, 32), "max": (8, 3, 32, 32)}}


def sidecars(cache):
    return [json.loads(p.read_text()) for p in sorted((cache / "plans").glob("*.json"))]


def test_autocast_converter_is_part_of_the_engine_key(tmp_path):
    from importlib.metadata import version

    if AUTOCAST_MISSING:
        pytest.skip(AUTOCAST_MISSING)
    cnn = TORCH / "cnn.onnx"
    build(cnn, tmp_path, precision="fp16", shapes=CNN_PROFILE)
    build(cnn, tmp_path, precision="fp16", shapes=CNN_PROFILE, build={"converter": "autocast"})
    build(cnn, tmp_path, precision="fp32", shapes=CNN_PROFILE, build="converter=autocast")  # nothing to convert
    build(cnn, tmp_path, precision="fp32", shapes=CNN_PROFILE)                               # ... so the same plan
    converters = sorted(str(meta["converter"]) for meta in sidecars(tmp_path))
    assert converters == ["None", f"modelopt autocast {version('nvidia-modelopt')} data_max=512 keep_io_types",
                          "pytest-trt casts v1"]


def test_autocast_asked_for_but_not_installed_is_one_sentence(tmp_path, monkeypatch):
    import importlib.util

    from pytest_trt.backends import autocast

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "modelopt" else find_spec(name, *a))
    monkeypatch.setattr(autocast, "_IMPORTS", ("modelopt",))  # one module missing, wherever this runs
    with pytest.raises(pytest_trt.TrtCompareError) as info:
        build(TORCH / "cnn.onnx", None, precision="fp16", shapes=CNN_PROFILE, build={"converter": "autocast"})
    assert str(info.value) == ("converter 'autocast' needs NVIDIA ModelOpt AutoCast, but modelopt is not installed; "
                               "install it with: pip install 'pytest-trt[autocast]', or use converter=casts")
    assert build(TORCH / "cnn.onnx", None, shapes=CNN_PROFILE, build={"converter": "autocast"})  # fp32 converts nothing


def test_mapped_fp16_file_is_built_as_it_is(tmp_path):
    """model={"fp32": ..., "fp16": ...}: the fp16 engine comes from the fp16 file (its sha256 in the key, nothing
    converted); a precision without an entry is converted from the fp32 file."""
    from pytest_trt.backends.convert import convert_file
    from pytest_trt.core.model import load_model_info

    fp16 = tmp_path / "cnn.fp16.onnx"
    onnx.save(convert_file(TORCH / "cnn.onnx", "float16"), str(fp16))
    models = {"fp32": str(TORCH / "cnn.onnx"), "fp16": str(fp16)}
    cache = tmp_path / "cache"
    build(models, cache, precision="fp16", shapes=CNN_PROFILE)
    (meta,) = sidecars(cache)
    assert meta["model_sha256"] == load_model_info(fp16).sha256 and meta["model_file"] == "cnn.fp16.onnx"
    assert meta["converter"] is None and meta["realization"]["convert_to"] is None
    build({"fp32": str(TORCH / "cnn.onnx")}, cache, precision="fp16", shapes=CNN_PROFILE)
    converted = [m for m in sidecars(cache) if m["converter"]]
    assert len(converted) == 1 and converted[0]["model_sha256"] == load_model_info(TORCH / "cnn.onnx").sha256


def test_mapped_file_with_other_names_is_refused(tmp_path):
    other = two_io_model(tmp_path / "other.onnx")   # inputs a, b; outputs s, i
    with pytest.raises(pytest_trt.TrtCompareError) as info:
        build({"fp32": str(TORCH / "mlp.onnx"), "fp16": str(other)}, None, precision="fp16", shapes={"x": (2, 32)})
    assert str(info.value) == (
        "build_engine model['fp16'] (other.onnx) does not have the inputs and outputs of model['fp32'] (mlp.onnx): "
        "input 'x' is missing, input 'a' is extra, input 'b' is extra, output 'y' is missing, output 's' is extra, "
        "output 'i' is extra; export both from the same model, or convert the fp32 file")


@pytest.mark.parametrize("how", ["unfused", "debug", "outputs"])
def test_localization_builds_expose_tensors_the_way_each_release_allows(tmp_path, how):
    """The network calls a localization makes (mark_unfused_tensors_as_debug_tensors, mark_debug, mark_output),
    made on a real TensorRT network: the plan builds, and marking one by one takes the float tensors only."""
    from models import overflow_model
    from pytest_trt.backends.registry import get_backend
    from pytest_trt.backends.tensorrt import build as build_module
    from pytest_trt.core.localization import observable
    from pytest_trt.core.model import graph_nodes, load_model_info

    info = load_model_info(overflow_model(tmp_path / "o.onnx"))
    names = tuple(t.name for t in observable(graph_nodes(str(info.path), info.sha256).nodes, info.input_names))
    marked = []
    original = build_module.mark_tensors

    def spy(trt, network, how_, wanted):
        marked.append(original(trt, network, how_, wanted))
        marked.append(sorted(network.get_output(i).name for i in range(network.num_outputs)))
        return marked[0]

    backend = get_backend(RTX)
    build_module.mark_tensors = spy
    try:
        outcome, _ = backend.build(info, "fp16", shapes={}, cache_dir=tmp_path / "cache", observe=(how, names))
    finally:
        build_module.mark_tensors = original
    assert outcome.plan and outcome.status == "built"
    count, outputs = marked
    if how == "unfused":
        assert count == -1 and outputs == ["out"]          # nothing marked one by one; the network keeps its output
    else:
        assert count == 4                                   # h, r, rs, logits ('out' is already an output)
        assert outputs == (["out"] if how == "debug" else sorted(["h", "r", "rs", "logits", "out"]))
    again, _ = backend.build(info, "fp16", shapes={}, cache_dir=tmp_path / "cache", observe=(how, names))
    plain, _ = backend.build(info, "fp16", shapes={}, cache_dir=tmp_path / "cache")
    assert again.status == "loaded" and plain.key != outcome.key   # its own cache key

