"""A model path that names a folder is one sentence naming it and the fix: from the eager API and from a marker."""
import pytest

import pytest_trt
from pytest_trt.errors import ModelError

from models import scale_model

from shared import INI


@pytest.mark.parametrize("call", [pytest_trt.load_model_info, lambda m: pytest_trt.run_onnxruntime(m, {}),
                                  lambda m: pytest_trt.make_inputs(m)], ids=["load_model_info", "run_onnxruntime",
                                                                              "make_inputs"])
def test_eager_api_names_the_folder(tmp_path, monkeypatch, call):
    scale_model(tmp_path / "models" / "scale.onnx", dims=(2, 4))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as info:
        call("models/")
    assert str(info.value) == (f"model path 'models/' is a directory ({str(tmp_path / 'models')!r}), not an ONNX file; "
                               "give the .onnx file's path, e.g. model='models/scale.onnx'")


def test_empty_folder(tmp_path):
    with pytest.raises(ModelError) as info:
        pytest_trt.load_model_info(tmp_path)
    assert str(info.value) == (f"model path {str(tmp_path)!r} is a directory, not an ONNX file, and holds no .onnx "
                               "file; give the path of the .onnx file itself")


def test_marker_names_the_folder_and_other_tests_run(pytester):
    scale_model(pytester.path / "models" / "scale.onnx", dims=(2, 4))
    pytester.makeini(INI)
    pytester.makepyfile(test_dir="""
        import pytest
        @pytest.mark.trt_compare(model="models")
        def test_folder(trt_compare):
            trt_compare()
    """, test_ok="""
        import pytest
        @pytest.mark.trt_compare(model="models/scale.onnx")
        def test_file(trt_compare):
            trt_compare()
    """)
    # until a marker's mistake is an error of its own test, the other file runs past the collection error
    result = pytester.runpytest("--update-golden", "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*trt_compare model path 'models' is a directory (*models'), not an ONNX file; "
                                 "give the .onnx file's path, e.g. model='models/scale.onnx'"])
    assert "Traceback" not in result.stdout.str()


def test_relative_path_follows_the_working_directory(tmp_path, monkeypatch):
    """The same relative path in two working directories names two models (a process that changes directory,
    as pytester runs do, must not keep the first folder's model)."""
    for name, dims in (("a", (2, 4)), ("b", (3, 5))):
        scale_model(tmp_path / name / "models" / "m.onnx", dims=dims)
    seen = []
    for name in ("a", "b"):
        monkeypatch.chdir(tmp_path / name)
        seen.append(pytest_trt.load_model_info("models/m.onnx").inputs[0].dims)
    assert seen == [(2, 4), (3, 5)]
