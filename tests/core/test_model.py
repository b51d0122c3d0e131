import pytest

from pytest_trt.errors import ModelError
from pytest_trt.core.model import load_model_info

from models import external_data_model, scale_model, two_io_model


def test_io_specs(tmp_path):
    info = load_model_info(two_io_model(tmp_path / "m.onnx"))
    assert [(s.name, s.dtype, s.dims) for s in info.inputs] == [("a", "float32", (2, 3)), ("b", "int64", (2, 3))]
    assert info.output_names == ("s", "i")
    dyn = load_model_info(scale_model(tmp_path / "d.onnx", dims=("batch", 4)))
    assert dyn.inputs[0].is_dynamic and dyn.inputs[0].describe() == "x (float32[batch,4])"


def test_hash_changes_with_weights_only(tmp_path):
    a = load_model_info(scale_model(tmp_path / "a.onnx", factor=2.0))
    b = load_model_info(scale_model(tmp_path / "b.onnx", factor=3.0))
    assert a.sha256 != b.sha256 and a.inputs == b.inputs


def test_hash_covers_external_data(tmp_path):
    path = external_data_model(tmp_path / "ext.onnx")
    first = load_model_info(path)
    assert first.external_data == ("ext.data",)
    data = tmp_path / "ext.data"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 1
    data.write_bytes(bytes(raw))
    from pytest_trt.core import model as model_module
    model_module._cache.clear()
    assert load_model_info(path).sha256 != first.sha256


def test_missing_external_data(tmp_path):
    path = external_data_model(tmp_path / "ext.onnx")
    (tmp_path / "ext.data").unlink()
    with pytest.raises(ModelError, match="references external data 'ext.data', which is missing"):
        load_model_info(path)


def test_not_onnx_and_missing(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\n")
    with pytest.raises(ModelError, match="is not a valid ONNX file .*Git LFS pointer"):
        load_model_info(bad)
    with pytest.raises(ModelError, match="does not exist"):
        load_model_info(tmp_path / "none.onnx")
    with pytest.raises(ModelError, match="is a directory"):
        load_model_info(tmp_path)
