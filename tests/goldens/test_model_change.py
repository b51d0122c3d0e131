"""A golden that fails after the model changed says so first: the sidecar records the model's sha256."""
import hashlib
import json

import pytest

from models import scale_model, two_io_model

from shared import INI


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def repo(repo):
    repo.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/scale.onnx", shapes={"x": (3, 4)})
        def test_x(trt_compare):
            trt_compare()
        @pytest.mark.trt_compare(model="models/scale.onnx", shapes={"x": (3, 4)})
        def test_inputs(trt_compare):
            trt_compare()
    """)
    return repo


def test_failing_golden_of_a_re_exported_model_says_the_model_changed_first(repo):
    model = scale_model(repo.path / "models" / "scale.onnx", dims=("batch", 4), factor=2.0)
    repo.runpytest("--update-golden").assert_outcomes(passed=2)
    before = sha(model)
    scale_model(model, dims=("batch", 4), factor=2.5)  # a re-export: the same graph, other weights
    after = sha(model)
    # test_inputs also ran on other inputs: its golden was recorded for a seed that is no longer the marker's
    (repo.path / "test_a.py").write_text((repo.path / "test_a.py").read_text().replace(
        'def test_inputs(trt_compare):\n    trt_compare()', 'def test_inputs(trt_compare):\n    trt_compare(seed=5)'))
    result = repo.runpytest()
    result.assert_outcomes(failed=2)
    changed = f"E       the model changed since this golden was recorded: sha256 {before[:8]}… -> {after[:8]}…"
    result.stdout.fnmatch_lines([
        "E       AssertionError: trt_compare [[]fp32] test_a.py::test_x: FAILED", "E       ", changed,
        "E       reference (onnxruntime) vs golden test_a/test_x/reference.npz: 1 of 1 outputs differ*",
        "*if the change is intended, regenerate it with: pytest --update-golden test_a.py::test_x)"])
    result.stdout.fnmatch_lines([
        "E       AssertionError: trt_compare [[]fp32] test_a.py::test_inputs: FAILED", "E       ", changed,
        "E       reference golden golden/test_a/test_inputs/reference.npz was recorded for different inputs *"])
    repo.runpytest("--update-golden").assert_outcomes(passed=2)
    repo.runpytest().assert_outcomes(passed=2)


def test_no_model_sentence_when_the_model_is_the_same(repo):
    """Only the weights' own change is named: a golden that fails for another reason says nothing of the model."""
    scale_model(repo.path / "models" / "scale.onnx", dims=("batch", 4))
    repo.runpytest("--update-golden").assert_outcomes(passed=2)
    sidecar = repo.path / "golden" / "test_a" / "test_x" / "reference.json"
    meta = json.loads(sidecar.read_text())
    meta["seed"] = 9
    meta["inputs"]["x"]["sha256"] = "0" * 64
    sidecar.write_text(json.dumps(meta))
    result = repo.runpytest()
    result.assert_outcomes(failed=1, passed=1)
    assert "the model changed" not in result.stdout.str()
    result.stdout.fnmatch_lines(["E       reference golden golden/test_a/test_x/reference.npz was recorded for "
                                 "different inputs (input 'x' has other values; seed was 9, now 0)*"])


def test_passing_golden_of_a_changed_model_passes_and_says_so(pytester):
    """A change that leaves the outputs within tolerance (here: the model renamed its graph) is no failure, but
    the summary says the golden was recorded from another model, and --update-golden records it from this one."""
    pytester.makeini(INI)
    model = two_io_model(pytester.path / "models" / "two.onnx")
    pytester.makepyfile(test_a="""
        import pytest
        @pytest.mark.trt_compare(model="models/two.onnx")
        def test_x(trt_compare):
            trt_compare()
    """)
    pytester.runpytest("--update-golden").assert_outcomes(passed=1)
    import onnx

    proto = onnx.load(str(model))
    proto.graph.name = "renamed"
    onnx.save(proto, str(model))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*goldens in *: 1 passed though recorded from another model (--update-golden "
                                 "records them from this one)", "  model changed: test_a/test_x/reference.npz"])
    result = pytester.runpytest("--update-golden")
    result.stdout.fnmatch_lines(["*goldens in *: 1 updated"])
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*goldens in *: 1 unchanged"])
