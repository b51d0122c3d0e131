"""Golden policy (goldens/policy.py): the cases the plugin-level golden tests do not reach."""
import hashlib
import json

from models import scale_model, two_io_model
from pytest_trt.core.check import CheckContext, run_check
from pytest_trt.core.spec import CompareSpec

HINT = "pytest --update-golden t.py::test_x"


def _ctx(golden_dir, rootdir, update=False):
    return CheckContext("t.py::test_x", golden_dir, ("t",), update_golden=update, rootdir=rootdir)


def _actions(result):
    return [(a.path, a.action, a.kind) for a in result.golden_actions]


def test_a_golden_of_a_model_with_other_inputs_names_the_inputs_gone_and_new(tmp_path):
    model = two_io_model(tmp_path / "m.onnx")
    before = hashlib.sha256(model.read_bytes()).hexdigest()
    spec = CompareSpec(model=model)
    assert _actions(run_check(spec, "fp32", _ctx(tmp_path / "golden", tmp_path, update=True))) == \
        [("t/reference.npz", "created", "reference")]
    scale_model(model, dims=(2, 3))   # the same file, now with one input of another name
    after = hashlib.sha256(model.read_bytes()).hexdigest()

    result = run_check(spec, "fp32", _ctx(tmp_path / "golden", tmp_path))
    assert result.problems == [
        f"the model changed since this golden was recorded: sha256 {before[:8]}… -> {after[:8]}…\n"
        "reference golden golden/t/reference.npz was recorded for different inputs (input 'a' is gone; "
        f"input 'b' is gone; input 'x' is new); if that change is intended, regenerate it with: {HINT}"]
    assert _actions(result) == [("t/reference.npz", "failed", "reference")]
    assert result.reference_vs_golden is None

    result = run_check(spec, "fp32", _ctx(tmp_path / "golden", tmp_path, update=True))
    assert result.passed and _actions(result) == [("t/reference.npz", "updated", "reference")]
    result = run_check(spec, "fp32", _ctx(tmp_path / "golden", tmp_path))
    assert result.passed and _actions(result) == [("t/reference.npz", "unchanged", "reference")]


def test_paths_outside_the_rootdir_are_shown_whole(tmp_path):
    """A golden directory or model outside the rootdir: messages and the sidecar name them by their full path."""
    rootdir = tmp_path / "project"
    rootdir.mkdir()
    golden_dir = tmp_path / "elsewhere" / "golden"
    model = scale_model(tmp_path / "models" / "m.onnx", dims=(2, 3))
    spec = CompareSpec(model=model)

    result = run_check(spec, "fp32", _ctx(golden_dir, rootdir))
    assert result.problems == [f"no reference golden for this test at {golden_dir / 't' / 'reference.npz'}; "
                               f"create it with: {HINT}"]
    assert _actions(result) == [("t/reference.npz", "missing", "reference")]

    result = run_check(spec, "fp32", _ctx(golden_dir, rootdir, update=True))
    assert result.passed and _actions(result) == [("t/reference.npz", "created", "reference")]
    meta = json.loads((golden_dir / "t" / "reference.json").read_text())
    assert meta["model"]["file"] == str(model)
